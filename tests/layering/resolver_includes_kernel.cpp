// Must not compile: the resolver including the kernel attach layer above it.
#include "kernel/attach.h"
