"""The classification fixtures: the file writers (gzip or plain, JSON lines or TSV) for the reader tests; the
fixture data folder, the offline tokenizer and the data module factory for the cache tests."""

from tests.tasks.classification.conftest import (  # noqa: F401 - fixtures, found by name
    data_dir,
    make_dm,
    tokenizer_path,
    writers,
)
