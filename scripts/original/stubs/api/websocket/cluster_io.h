// Empty stand-in: nothing of it is used by a single-threaded run (scripts/original/stubs/README.md).
#pragma once
