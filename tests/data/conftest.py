"""The file writers of the classification fixtures (gzip or plain, JSON lines or TSV), for the reader tests."""

from tests.tasks.classification.conftest import writers  # noqa: F401 - a fixture, found by name
