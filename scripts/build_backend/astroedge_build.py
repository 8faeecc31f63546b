"""In-tree build backend: wheels and sdists by scikit-build-core, editable installs by setuptools.

Why two: the wheel must carry the native libraries, which only a CMake build makes (scikit-build-core
runs the root CMakeLists.txt); the development install (`make setup`) is an editable install of the
source tree, where the libraries come from build/plugins and build/runtime and the Python subpackages
map export/ -> astroedge.export and runtime/python -> astroedge.runtime. setuptools' editable mode does
that mapping with a plain path hook and no native build, which keeps `make setup` as fast and robust as
before. Both read the same [project] table of pyproject.toml.
"""

from __future__ import annotations

from typing import Any

# libastroedge links libonnxruntime.so.1: the build takes it from the onnxruntime wheel (runtime/CMakeLists.txt).
_BUILD_ONNXRUNTIME = "onnxruntime>=1.23.2,<2"

Settings = dict[str, Any] | None


def get_requires_for_build_wheel(config_settings: Settings = None) -> list[str]:
    from scikit_build_core import build

    return [*build.get_requires_for_build_wheel(config_settings), _BUILD_ONNXRUNTIME]


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: Settings = None) -> str:
    from scikit_build_core import build

    return build.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def build_wheel(wheel_directory: str, config_settings: Settings = None, metadata_directory: str | None = None) -> str:
    from scikit_build_core import build

    return build.build_wheel(wheel_directory, config_settings, metadata_directory)


def get_requires_for_build_sdist(config_settings: Settings = None) -> list[str]:
    from scikit_build_core import build

    return build.get_requires_for_build_sdist(config_settings)


def build_sdist(sdist_directory: str, config_settings: Settings = None) -> str:
    from scikit_build_core import build

    return build.build_sdist(sdist_directory, config_settings)


def get_requires_for_build_editable(config_settings: Settings = None) -> list[str]:
    from setuptools import build_meta

    return build_meta.get_requires_for_build_editable(config_settings)


def prepare_metadata_for_build_editable(metadata_directory: str, config_settings: Settings = None) -> str:
    from setuptools import build_meta

    return build_meta.prepare_metadata_for_build_editable(metadata_directory, config_settings)


def build_editable(wheel_directory: str, config_settings: Settings = None, metadata_directory: str | None = None) -> str:
    from setuptools import build_meta

    return build_meta.build_editable(wheel_directory, config_settings, metadata_directory)
