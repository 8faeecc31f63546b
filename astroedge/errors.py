"""One exception type for mistakes a user can fix.

The CLI turns it into a single line on stderr and exit code 2, never a traceback. Anything else that
escapes is a bug in astroedge and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: the message names the file, field or value and says how to fix it."""


# Command-line values shared by `astroedge generate` and `astroedge run` (the ranges are libastroedge's, runtime/include/astroedge.h).
MAX_NEW_TOKENS = 2**31 - 1  # the C API counts tokens in int32; beyond it a stream would run until killed
MAX_SEED = 2**64 - 1  # the one RNG (libastroedge) takes a uint64 seed
TEMPERATURE_RANGE = (1e-6, 1e6)  # or exactly 0 (greedy): tinier values overflow exp(logit / T)


def check_utf8(text: str, option: str) -> str:
    """Refuse command-line text that was not UTF-8: Python hands such bytes over as lone surrogates (PEP 383)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        byte = ord(text[exc.start]) & 0xFF
        raise UserError(f"{option}: not valid UTF-8 (byte 0x{byte:02x} at character {exc.start}); pass UTF-8 text") from None
    return text


def check_sampling(max_new_tokens: int, temperature: float, top_k: int, top_p: float, seed: int, repetition_penalty: float = 1.0) -> None:
    """One line naming the option for a sampling value no sampler can honour (NaN, overflow, a count that never ends)."""
    if not 0 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise UserError(f"--max-new-tokens {max_new_tokens}: must be in 0..{MAX_NEW_TOKENS}")
    lo, hi = TEMPERATURE_RANGE
    if not (temperature == 0 or lo <= temperature <= hi):
        raise UserError(f"--temperature {temperature}: must be 0 (greedy) or in [{lo:g}, {hi:g}]")
    if top_k < 0:
        raise UserError(f"--top-k {top_k}: must be >= 0 (0 = off)")
    if not 0 < top_p <= 1:
        raise UserError(f"--top-p {top_p}: must be in (0, 1] (1 = off)")
    if not 0 <= seed <= MAX_SEED:
        raise UserError(f"--seed {seed}: must be in 0..{MAX_SEED}")
    if not (0 < repetition_penalty < float("inf")):
        raise UserError(f"--repetition-penalty {repetition_penalty}: must be > 0 and finite (1 = off)")
