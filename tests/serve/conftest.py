from tests.predict.conftest import fixture_data_dir, runs_root, trained  # noqa: F401  (the same tiny runs)
