// Must not compile: the exporter reaching past the agent's read-only views into the kernel layer.
#include "kernel/attach.h"
