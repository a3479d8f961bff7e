#include "agent/attach.h"
