"""Pick the tinygrad device once (CPU, CUDA, METAL, ... or "auto"), with one clear line when it cannot be used."""
import contextlib

from tinygpt.errors import TinyGPTError


def usable_devices() -> list[str]:
    """The devices tinygrad can open on this machine, e.g. ["CPU"] or ["CUDA", "CPU"]."""
    from tinygrad import Device
    return list(dict.fromkeys(Device.get_available_devices()))


def resolve_device(name: "str | None" = None) -> str:
    """Canonical tinygrad device name for `name` ("auto"/None -> tinygrad's default, which honours DEV=...).

    Raises TinyGPTError listing the usable devices when `name` is unknown or cannot be opened here.
    """
    from tinygrad import Device
    if name is None or str(name).strip().lower() in ("", "auto"):
        return Device.DEFAULT
    wanted = str(name).strip().upper()
    try:
        return Device[wanted].device
    except Exception:  # an unknown name fails on import, a missing driver on open: both mean "not here"
        raise TinyGPTError(f"device {name!r} is not available here; usable devices: "
                           f"{', '.join(usable_devices()) or 'none'} (or 'auto')") from None


@contextlib.contextmanager
def default_device(device: str):
    """Within this block, tensors created without an explicit device land on `device`.

    When `device` already is the default, the DEV setting is left untouched (it may carry a renderer choice,
    e.g. DEV=CPU:LLVM, that a plain "CPU" would drop).
    """
    from tinygrad import Context, Device
    if device == Device.DEFAULT:
        yield
        return
    with Context(DEV=device):
        yield
