"""The packages whose names are imported on first use (`deepprompt.utils.lazy`): every exported name resolves to
the object of its home module, and a name that is not exported fails as a missing attribute of that package."""

import importlib

import pytest

PACKAGES = ["deepprompt", "deepprompt.data", "deepprompt.prompts", "deepprompt.tasks.classification"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)  # AttributeError where the name's home module does not define it
        # a class or function is defined inside the package (not a same-named import from elsewhere)
        assert getattr(value, "__module__", package).startswith(package), (package, name, value)
        assert getattr(value, "__name__", name) == name, (package, name)


@pytest.mark.parametrize("package", PACKAGES)
def test_an_unknown_name_is_a_missing_attribute_of_the_package(package):
    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'nope'"):
        module.nope  # noqa: B018
    assert not hasattr(module, "nope")
