import pytest


@pytest.fixture(scope="session", autouse=True)
def kernels_loaded():
    """Build (cached) and load the kernel libraries once for the kernel tests."""
    from quantviz_kernels import load

    return load()
