// Must compile: the agent including the layer below it (the check's control).
#include "kernel/attach.h"
