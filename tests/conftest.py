"""Suite-wide guard: a runaway test fails with MemoryError instead of taking the
whole machine (2 cores, 24 GiB, shared with CI) down through the OOM killer."""

from __future__ import annotations

import resource

_LIMIT = 8 * 1024**3

_soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
if _soft == resource.RLIM_INFINITY or _soft > _LIMIT:
    resource.setrlimit(resource.RLIMIT_AS, (_LIMIT, _hard))
