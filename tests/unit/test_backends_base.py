"""The backend interface (src/selftaught/backends/base.py)."""

import pytest

from selftaught.backends import GenerationBackend, TransformersBackend, VLLMBackend


def test_interface_is_abstract():
    with pytest.raises(TypeError):
        GenerationBackend()
    assert issubclass(TransformersBackend, GenerationBackend) and issubclass(VLLMBackend, GenerationBackend)
