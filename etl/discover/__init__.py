r"""Discovery: from a source in sources.yaml to the pages or candidate articles of one interval.

Feeds, sitemaps and URL lists give :class:`~etl.records.Candidate`\ s (:func:`discover`);
WARC files give pages directly (:func:`read_warc`; in chunks, :func:`plan_warc` and
:func:`read_warc_chunk`); :class:`SourceFiles` opens local or S3 input.
"""

from typing import TYPE_CHECKING

from etl._lazy import surface

if TYPE_CHECKING:
    from etl.discover.documents import discover as discover
    from etl.discover.files import SourceFiles as SourceFiles
    from etl.discover.warc import read_warc as read_warc
    from etl.discover.warcchunks import chunk_id as chunk_id
    from etl.discover.warcchunks import plan_warc as plan_warc
    from etl.discover.warcchunks import read_warc_chunk as read_warc_chunk

__all__, __getattr__, __dir__ = surface(
    __name__,
    {
        "documents": ("discover",),
        "files": ("SourceFiles",),
        "warc": ("read_warc",),
        "warcchunks": ("chunk_id", "plan_warc", "read_warc_chunk"),
    },
)
