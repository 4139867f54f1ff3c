"""Reusable click options, one decorator per concern (model, logging), shared by all commands."""

from __future__ import annotations

import functools

import click

from vim_deploy import log


def model_options(default_model: str | None = "vim_tiny"):
    """--model, --checkpoint, --ema, --unsafe-load, --img-size, --seed."""

    def deco(fn):
        @click.option("--model", "-m", default=default_model, show_default=True,
                      help="Registered model: vim_tiny, vim_small, vim_base, vim_tiny_stride8, vim_small_stride8 "
                           "or an official hustvl/Vim name (`vim-deploy models`).")
        @click.option("--checkpoint", "-c", type=click.Path(dir_okay=True), default=None,
                      help="hustvl/Vim .pth checkpoint (its 'model' entry, or a bare state_dict). "
                           "Without it, weights are seeded random (a warning says so).")
        @click.option("--ema", "use_ema", is_flag=True, help="Load the checkpoint's 'model_ema' entry instead of 'model'.")
        @click.option("--unsafe-load", is_flag=True,
                      help="Allow full pickle when reading the checkpoint (only for files you trust).")
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)

        return wrapper

    return deco


def graph_form_options(fn):
    """--form (a preset of vim_deploy.export.forms.PRESETS), --ort-optimized, and one option per graph-form knob
    (vim_deploy.export.forms.KNOBS), each overriding the preset; the command gets ``form`` (a GraphForm)."""
    from vim_deploy.export.forms import KNOB, KNOBS, PRESETS, preset

    @functools.wraps(fn)
    def wrapper(*args, form_name, ort_optimized, **kwargs):
        form = preset("ort-optimized" if ort_optimized else form_name)
        changes = {k.name: kwargs.pop(k.name) for k in KNOBS}
        # choices arrive as strings; the knob's default says the type (bools come from flags as bools)
        changes = {name: (v if isinstance(v, bool) else type(KNOB[name].default)(v))
                   for name, v in changes.items() if v is not None}
        return fn(*args, form=form.with_(**changes), **kwargs)

    for knob in reversed(KNOBS):
        flag = "--pad-tokens" if knob.name == "token_padding" else knob.flag
        if isinstance(knob.default, bool):
            opt = click.option(f"{flag}/--no-{flag[2:]}", knob.name, default=None, help=knob.help)
        else:
            opt = click.option(flag, knob.name, type=click.Choice([str(c) for c in knob.choices]), default=None,
                               help=f"{knob.help} [default: the --form's; plain: {knob.default}]")
        wrapper = opt(wrapper)
    plain = PRESETS["plain"].metadata()
    forms = "; ".join(f"{n}: " + (", ".join(f"{k}={v}" for k, v in f.metadata().items() if v != plain[k]) or "the defaults")
                      for n, f in PRESETS.items())
    wrapper = click.option("--ort-optimized", is_flag=True, help="Shorthand for --form ort-optimized.")(wrapper)
    wrapper = click.option("--form", "form_name", type=click.Choice(list(PRESETS)), default="plain", show_default=True,
                           help=f"Graph form preset, overridden by the options below ({forms}). docs/export-forms.md "
                                "says which runtime serves which.")(wrapper)
    return wrapper


def logging_options(fn):
    """-v/--verbose and -q/--quiet (counted)."""

    @click.option("-v", "--verbose", count=True, help="More output (repeatable).")
    @click.option("-q", "--quiet", count=True, help="Less output: warnings and errors only.")
    @functools.wraps(fn)
    def wrapper(*args, verbose: int = 0, quiet: int = 0, **kwargs):
        log.configure(verbose - quiet)
        return fn(*args, **kwargs)

    return wrapper


class Progress:
    """Step messages with elapsed time: `[  2.1s] tracing ...`."""

    def __init__(self):
        import time

        self._time = time.perf_counter
        self.t0 = self._time()

    def __call__(self, msg: str) -> None:
        log.info(f"[{self._time() - self.t0:6.1f}s] {msg}")

    def bar(self, label: str, total: int, unit: str = ""):
        """A progress bar for ``total`` steps of ``label``; returns ``tick(n=1)``. On a terminal one line
        redrawn in place; in a log (not a TTY) a line at every quarter. Silent with -q."""
        import sys

        state = {"done": 0, "shown": -1}
        tty = sys.stderr.isatty()
        enabled = log.LOGGER.isEnabledFor(20)  # logging.INFO

        def tick(n: int = 1) -> None:
            state["done"] = min(total, state["done"] + n)
            if not enabled or total <= 0:
                return
            done = state["done"]
            head = f"[INFO] [{self._time() - self.t0:6.1f}s] {label}"
            if tty:
                filled = int(24 * done / total)
                sys.stderr.write(f"\r{head} [{'#' * filled}{'.' * (24 - filled)}] {done}/{total} {unit}".rstrip())
                if done == total:
                    sys.stderr.write("\n")
                sys.stderr.flush()
            else:
                quarter = 4 * done // total
                if quarter != state["shown"] and (quarter > state["shown"] or done == total):
                    state["shown"] = quarter
                    log.info(f"[{self._time() - self.t0:6.1f}s] {label}: {done}/{total} {unit}".rstrip())

        return tick
