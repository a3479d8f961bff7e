#include <gtest/gtest.h>

#include "tests/support/support.h"
