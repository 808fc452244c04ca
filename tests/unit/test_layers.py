"""shared/'s import graph (grimp, the engine of `make lint`'s import-linter contract): no import cycle anywhere,
imports inside functions included (only `if TYPE_CHECKING:` ones are left out)."""

from __future__ import annotations

import grimp


def test_no_module_of_shared_imports_itself_back_through_another() -> None:
    graph = grimp.build_graph("shared", exclude_type_checking_imports=True)
    cycles = [
        (importer, imported)
        for importer in sorted(graph.modules)
        for imported in sorted(graph.find_modules_directly_imported_by(importer))
        if graph.chain_exists(importer=imported, imported=importer)
    ]
    assert cycles == []
