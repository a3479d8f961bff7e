// Must not compile: the kernel layer including the agent's logic above it.
#include "agent/inventory.h"
