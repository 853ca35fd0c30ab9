r"""Discovery: from a source in sources.yaml to the pages or candidate articles of one interval.

Feeds, sitemaps and URL lists give :class:`~etl.records.Candidate`\ s (:func:`discover`);
WARC files give pages directly (:func:`read_warc`); :class:`SourceFiles` opens local or S3 input.
"""

from typing import TYPE_CHECKING

from etl._lazy import surface

if TYPE_CHECKING:
    from etl.discover.documents import (
        discover as discover,
    )
    from etl.discover.files import (
        SourceFiles as SourceFiles,
    )
    from etl.discover.warc import (
        read_warc as read_warc,
    )

__all__, __getattr__, __dir__ = surface(
    __name__,
    {
        "documents": ("discover",),
        "files": ("SourceFiles",),
        "warc": ("read_warc",),
    },
)
