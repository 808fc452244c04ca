"""The host <-> language worker protocol (FunctionRpc) as generated protobuf modules.

``azure-functions-runtime-v1`` ships its generated ``FunctionRpc_pb2`` modules as a top-level
``tests/protos`` package in site-packages. Importing it as ``tests.protos`` would collide with this
project's own ``tests/`` folder, so the package is loaded from its file path under a private name.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_DISTRIBUTION = "azure-functions-runtime-v1"
_PACKAGE_FILE = "tests/protos/__init__.py"
_MODULE_NAME = "_devhost_function_rpc"


@functools.cache
def load_protos() -> ModuleType:
    """Return the FunctionRpc protos package (``StreamingMessage``, ``TypedData``, ``RpcHttp`` ...)."""
    if _MODULE_NAME in sys.modules:
        return sys.modules[_MODULE_NAME]
    init = _package_init()
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, init, submodule_search_locations=[str(init.parent)])
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the FunctionRpc protos from {init}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = module  # the package's relative imports need it registered first
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_MODULE_NAME]
        raise
    return module


def _package_init() -> Path:
    try:
        located = importlib.metadata.distribution(_DISTRIBUTION).locate_file(_PACKAGE_FILE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ImportError(f"{_DISTRIBUTION} is not installed (see requirements-dev.txt)") from exc
    path = Path(str(located))
    if not path.is_file():
        raise ImportError(f"{_DISTRIBUTION} does not ship {_PACKAGE_FILE} (looked at {path})")
    return path
