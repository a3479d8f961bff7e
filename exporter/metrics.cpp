#include "exporter/metrics.h"
