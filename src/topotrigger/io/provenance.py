"""Where an event came from: the ROOT file, the entry in it and the event number the file records.

`ingest` writes these columns next to each event, `features` carries them into every split and
`predict` writes them next to the scores, so a score joins back to the ROOT event it belongs to.
Datasets ingested before they existed read them as null.
"""

from __future__ import annotations

import pyarrow as pa

PROVENANCE = pa.schema([("source_file", pa.string()), ("source_entry", pa.int64()), ("event_number", pa.int64())])
PROVENANCE_DDL = "source_file string, source_entry bigint, event_number bigint"
