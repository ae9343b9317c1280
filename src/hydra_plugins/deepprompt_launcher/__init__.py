"""deepprompt's Hydra launcher plugin: ``hydra/launcher=parallel`` (:mod:`.parallel_launcher`).

Hydra finds it in the ``hydra_plugins`` namespace package (no ``__init__.py`` one level up), installed or on
``PYTHONPATH``."""
