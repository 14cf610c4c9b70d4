"""What CPU a run had: its model name and the vector / matrix features that change torch's speed."""
import functools
import platform

FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


@functools.lru_cache(maxsize=1)
def _cpuinfo():
    """(model name, frozenset of feature flags) from /proc/cpuinfo (Linux), else the platform's name; read once."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    return model, frozenset(flags)


def cpu_flags():
    """The CPU's feature flags (e.g. 'avx2', 'amx_bf16'); empty where /proc/cpuinfo is missing."""
    return _cpuinfo()[1]


def cpu_description():
    """``'<model name> (<features>)'`` of this machine, from /proc/cpuinfo (Linux) or the platform."""
    model, flags = _cpuinfo()
    have = [name for name in FEATURES if name in flags]
    return f"{model} ({', '.join(have) if have else 'no AVX2'})"
