"""The hooks a plugin implements: one per component kind of `mmlabel.kinds`, named by it (`register_fusion_heads`,
...), each handed a `register(name, factory)` callback. Each hook's docstring is written from its kind's protocol in
`mmlabel.contracts`, so it names the members the contract defines; `docs/plugin-hooks.md` lists them all."""
from typing import Callable

import pluggy

from mmlabel import kinds

hookspec = pluggy.HookspecMarker("mmlabel")
hookimpl = pluggy.HookimplMarker("mmlabel")

Register = Callable[[str, Callable], None]


def spec(kind: "kinds.Kind") -> Callable:
    """The hookspec of `kind`: `register_<plural>(register)`, its docstring from the kind's protocol."""

    def hook(register: Register) -> None:
        pass

    hook.__name__ = hook.__qualname__ = kind.hook
    hook.__doc__ = kind.hook_doc
    return hookspec(hook)


def namespace(kind: "kinds.Kind") -> type:
    """A class holding `kind`'s hookspec alone, for `PluginManager.add_hookspecs` (a kind declared later)."""
    return type(f"{kind.name}_hooks", (), {kind.hook: staticmethod(spec(kind))})


for _kind in kinds.KINDS.values():
    globals()[_kind.hook] = spec(_kind)
