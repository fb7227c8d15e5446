// Stand-in: only the debug log macro of the original's root header is used.
#pragma once
#define LOG_DEBUG(x) \
    do {             \
    } while (0)
