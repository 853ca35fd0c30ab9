"""The run report: figures read from the lake (:func:`build_report`) and their HTML page."""

from typing import TYPE_CHECKING

from etl._lazy import surface

if TYPE_CHECKING:
    from etl.report.figures import (
        build_report as build_report,
    )
    from etl.report.html import (
        render_html as render_html,
    )

__all__, __getattr__, __dir__ = surface(
    __name__,
    {
        "figures": ("build_report",),
        "html": ("render_html",),
    },
)
