// Stand-in: the host type lives in the stand-in cluster header.
#pragma once
#include <core/cluster/cluster.h>
