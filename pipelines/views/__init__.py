"""SQL on FHIR v2 ViewDefinitions compiled to set-based DuckDB SQL.

from pipelines.views import compile_view, ViewError, load_view
sql = compile_view(view, "raw.resource", carry=("raw_id",))
"""

from .compiler import OutColumn, ViewError, compile_view, load_view, view_columns

__all__ = ["OutColumn", "ViewError", "compile_view", "load_view", "view_columns"]
