"""ctypes declarations of libastroedge's C API (runtime/include/astroedge.h, API version 3).

Only declarations and the status check live here; astroedge.runtime.engine builds the Python API on
them. ctypes, not a compiled extension: the binding needs no compiler on the device, and ctypes releases
the GIL during each call, so streams of one engine decode in parallel threads as the C API allows.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, c_char, c_char_p, c_float, c_int, c_int32, c_int64, c_size_t, c_uint64, c_void_p
from functools import cache
from typing import Any

from astroedge.errors import UserError

API_VERSION = 3  # the header's AE_API_VERSION this binding is written against

AE_OK = 0
AE_ERR_BUFFER_TOO_SMALL = 8
AE_ERR_NO_LOGITS = 9

# int (*AeTokenCallback)(int32_t token, const char* piece, size_t piece_len, void* user_data)
TOKEN_CALLBACK = ctypes.CFUNCTYPE(c_int, c_int32, c_void_p, c_size_t, c_void_p)
P = c_void_p  # every opaque handle (AeEngine*, AeStream*, ...) and every float/int buffer passed as a numpy pointer
S = c_int  # AeStatus

# name: (restype, argtypes)
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "ae_last_error": (c_char_p, []),
    "ae_status_string": (c_char_p, [S]),
    "ae_api_version": (c_int, []),
    "ae_engine_params_create": (S, [POINTER(P)]),
    "ae_engine_params_destroy": (None, [P]),
    "ae_engine_params_set_package_dir": (S, [P, c_char_p]),
    "ae_engine_params_set_device": (S, [P, c_char_p]),
    "ae_engine_params_set_device_id": (S, [P, c_int32]),
    "ae_engine_params_set_num_threads": (S, [P, c_int32]),
    "ae_engine_params_set_amsu_library": (S, [P, c_char_p]),
    "ae_engine_params_set_verify_checksums": (S, [P, c_int32]),
    "ae_engine_create": (S, [P, POINTER(P)]),
    "ae_engine_destroy": (None, [P]),
    "ae_engine_vocab_size": (c_int32, [P]),
    "ae_engine_max_position": (c_uint64, [P]),
    "ae_engine_state_size": (c_size_t, [P]),
    "ae_engine_state_count": (c_size_t, [P]),
    "ae_engine_state_name": (c_char_p, [P, c_size_t]),
    "ae_engine_state_shape": (c_size_t, [P, c_size_t, POINTER(c_int64), c_size_t]),
    "ae_engine_kernel": (c_char_p, [P]),
    "ae_engine_device": (c_char_p, [P]),
    "ae_engine_precision": (c_char_p, [P]),
    "ae_engine_tokenizer": (c_char_p, [P]),
    "ae_engine_tokenizer_data": (POINTER(c_char), [P, POINTER(c_size_t)]),
    "ae_engine_manifest_sha256": (c_char_p, [P]),
    "ae_stream_create": (S, [P, POINTER(P)]),
    "ae_stream_destroy": (None, [P]),
    "ae_stream_reset": (S, [P]),
    "ae_stream_clone": (S, [P, POINTER(P)]),
    "ae_stream_position": (c_uint64, [P]),
    "ae_stream_feed": (S, [P, P, c_size_t, P]),
    "ae_stream_step": (S, [P, c_int32, P]),
    "ae_stream_logits": (S, [P, P]),
    "ae_decode_batch": (S, [P, P, c_size_t, P]),
    "ae_stream_state_size": (c_size_t, [P]),
    "ae_stream_get_state": (S, [P, P, c_size_t]),
    "ae_stream_set_state": (S, [P, P, c_size_t, c_uint64, P]),
    "ae_stream_save_state": (S, [P, c_char_p]),
    "ae_stream_load_state": (S, [P, c_char_p]),
    "ae_generate_params_create": (S, [POINTER(P)]),
    "ae_generate_params_destroy": (None, [P]),
    "ae_generate_params_set_max_tokens": (S, [P, c_int32]),
    "ae_generate_params_set_temperature": (S, [P, c_float]),
    "ae_generate_params_set_top_k": (S, [P, c_int32]),
    "ae_generate_params_set_top_p": (S, [P, c_float]),
    "ae_generate_params_set_repetition_penalty": (S, [P, c_float]),
    "ae_generate_params_set_seed": (S, [P, c_uint64]),
    "ae_generate_params_add_stop": (S, [P, c_char_p, c_size_t]),
    "ae_generate_params_max_tokens": (c_int32, [P]),
    "ae_generate_params_temperature": (c_float, [P]),
    "ae_generate_params_top_k": (c_int32, [P]),
    "ae_generate_params_top_p": (c_float, [P]),
    "ae_generate_params_repetition_penalty": (c_float, [P]),
    "ae_generate_params_seed": (c_uint64, [P]),
    "ae_sampler_create": (S, [P, POINTER(P)]),
    "ae_sampler_destroy": (None, [P]),
    "ae_stream_sample": (S, [P, P, POINTER(c_int32)]),
    "ae_sampler_pick": (S, [P, P, c_size_t, P, POINTER(c_int32)]),
    "ae_generator_create": (S, [P, P, P, c_size_t, POINTER(P)]),
    "ae_generator_destroy": (None, [P]),
    "ae_generator_next": (S, [P, POINTER(c_int32), POINTER(c_void_p), POINTER(c_size_t), POINTER(c_int32)]),
    "ae_generator_set_piece": (S, [P, c_char_p, c_size_t]),
    "ae_generator_stop_index": (c_int32, [P]),
    # the push-style loop over the generator, as C apps call it: the binding pulls from ae_generator_next to
    # yield lazily; declared so that tests can check both give the same tokens
    "ae_generate": (S, [P, P, c_size_t, P, TOKEN_CALLBACK, P, P, P]),
}


class Lib:
    """The loaded library with typed functions as attributes, and `check` for their statuses."""

    def __init__(self, cdll: ctypes.CDLL, path: str) -> None:
        self.path = path
        for name, (restype, argtypes) in _SIGNATURES.items():
            try:
                fn = getattr(cdll, name)
            except AttributeError:
                raise UserError(
                    f"{path}: lacks {name}; it is an older libastroedge than this binding (API {API_VERSION}): rebuild it (make setup)"
                ) from None
            fn.restype, fn.argtypes = restype, argtypes
            setattr(self, name, fn)
        if self.ae_api_version() < API_VERSION:
            raise UserError(f"{path}: API version {self.ae_api_version()}, this binding needs {API_VERSION}: rebuild it (make setup)")

    def error(self, status: int) -> UserError:
        """The library's one-line message for a failed call (thread-local in C, read on the same thread)."""
        message = self.ae_last_error().decode("utf-8", errors="replace")
        return UserError(message or self.ae_status_string(status).decode())

    def check(self, status: int) -> None:
        if status != AE_OK:
            raise self.error(status)

    def new(self, create: Any, *args: Any) -> int:
        """Call an `ae_xxx_create(..., Ae** out)` function; returns the handle (an int address)."""
        out = P()
        self.check(create(*args, ctypes.byref(out)))
        assert out.value is not None
        return out.value

    def __getattr__(self, name: str) -> Any:  # pragma: no cover - only reached for a name missing from _SIGNATURES
        raise AttributeError(f"libastroedge binding: {name} is not declared in _SIGNATURES")


@cache
def lib() -> Lib:
    """libastroedge, found by astroedge.native (ASTROEDGE_LIBRARY, the wheel's copy, then build/runtime) and loaded once."""
    from astroedge.native import load_runtime_library, runtime_library_path

    return Lib(load_runtime_library(), str(runtime_library_path()))
