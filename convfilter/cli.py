"""The command line: parse, call the library, print the report, map errors to exit statuses.

``convfilter KERNEL [INPUT]... -o OUTPUT`` filters; ``list`` and ``params`` are subcommands.
The library modules are imported inside the commands, so that ``--help`` stays quick.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
from dataclasses import replace
from pathlib import Path

import click

from . import __version__, interrupts
from .commands import gallery_command, list_command, params_command, show_command
from .errors import ConvFilterError, ImageError, UsageError
from .guards import DEFAULT_MAX_PIXELS, Limits
from .options import (
    ALPHAS,
    BORDERS,
    FORMATS,
    RANGES,
    complete_kernel,
    mix_options,
    param_option,
    parse_mix,
    parse_padding,
    parse_params,
)

EXIT_INTERRUPTED = 130
SUBCOMMANDS_HELP = """\b
Other commands:
  convfilter list [--json]        every kernel: name, shape, mix, summary
  convfilter show KERNEL [-p NAME=VALUE] [--channels C] [--json] [--plot FILE.png]
                                  a kernel's weights, configuration and counts
  convfilter gallery IMAGE -o SHEET.png
                                  every built-in applied to IMAGE, as a labelled sheet
  convfilter params --in-channels C --out-channels O --kernel-size K [--groups G] [--bias]
                    [--size WxH] [--json]
                                  parameter and multiply-add calculator for any layer
  convfilter --version            the version

\b
Exit status: 0 all written; 1 a failure while processing (unreadable image, write
failure; in a batch, any file failed); 2 a usage or kernel error, found before any image
is written; 130 interrupted (Ctrl-C), 143 terminated (SIGTERM), 129 hung up (SIGHUP):
finished outputs stay, no partial file is left."""


def _fail(message: str, code: int) -> None:
    click.echo(f"convfilter: error: {' '.join(str(message).split())}", err=True)
    sys.exit(code)


class FilterCommand(click.Command):
    """The filtering command, reached as ``convfilter KERNEL …`` without a command word."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Show the usage as users type it: no command word."""
        formatter.write_usage("convfilter", "KERNEL [INPUT]... [-o OUTPUT] [OPTIONS]")


class Main(click.Group):
    """``convfilter``: a kernel name (or file) first filters; a command word runs that command."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        """Route anything that is not a command word to the filter command."""
        if args and args[0] in self.commands:
            return super().resolve_command(ctx, args)
        return "", filter_command, args

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list:
        """The first word completes to a command word or a kernel (or a kernel file)."""
        return [*super().shell_complete(ctx, incomplete), *complete_kernel(ctx, None, incomplete)]

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """``convfilter --help`` is the filter command's help plus the other commands."""
        with click.Context(filter_command, info_name="convfilter", parent=None) as sub:
            filter_command.format_help(sub, formatter)

    def main(self, args=None, prog_name=None, **extra):
        """Run the command line; every error ends as one line and its documented exit status."""
        args = list(sys.argv[1:] if args is None else args)
        _debug["on"] = False
        extra.pop("standalone_mode", None)
        try:
            # SIGINT, SIGTERM and SIGHUP end the run as one exception: temporary files removed, exit 128 + N
            with interrupts.handled():
                code = super().main(args=args, prog_name=prog_name or "convfilter", standalone_mode=False, **extra)
        except interrupts.Interrupted as stop:
            _fail(stop.message, stop.exit_code)
        except click.exceptions.Abort:
            _fail("interrupted", EXIT_INTERRUPTED)
        except KeyboardInterrupt:
            _fail("interrupted", EXIT_INTERRUPTED)
        except click.exceptions.NoArgsIsHelpError as error:
            click.echo(error.ctx.get_help())
            sys.exit(2)
        except click.ClickException as error:
            _fail(error.format_message(), 2)
        except ConvFilterError as error:
            if _debug["on"]:
                raise
            _fail(str(error), error.exit_code)
        except BrokenPipeError:
            _quiet_broken_pipe()
        except Exception as error:
            if _debug["on"]:
                raise
            _fail(f"unexpected {type(error).__name__}: {error} (run with --debug for the traceback)", 1)
        sys.exit(code if isinstance(code, int) else 0)


def _quiet_broken_pipe() -> None:
    # the reader went away (| head): stop quietly, and keep Python from complaining at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(1)


@click.group(
    name="convfilter", cls=Main, invoke_without_command=False, context_settings={"ignore_unknown_options": True}
)
@click.version_option(version=__version__, message="convfilter %(version)s")
def cli() -> None:
    """Filter images with convolution kernels."""


@click.command(
    cls=FilterCommand,
    epilog=SUBCOMMANDS_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.argument("kernel_ref", metavar="KERNEL", shell_complete=complete_kernel)
@click.argument("inputs", metavar="[INPUT]...", nargs=-1, type=click.Path())
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    help="Output file (format from its extension), - for standard output, or FOLDER/.",
)
@mix_options
@param_option
@click.option(
    "--padding",
    metavar="MODE|N|H,W",
    callback=lambda ctx, param, value: parse_padding(value),
    help=f"Border handling ({', '.join(BORDERS)}; valid: none, a smaller output), or PyTorch's size: N or H,W.",
)
@click.option("--stride", type=click.IntRange(min=1), help="Keep every N-th row and column.")
@click.option("--dilation", type=click.IntRange(min=1), help="Spacing between kernel taps.")
@click.option("--flip/--no-flip", default=None, help="Mathematical convolution (kernel rotated 180°).")
@click.option(
    "--range",
    "range_policy",
    type=click.Choice(RANGES),
    help="Float to pixels.",
)
@click.option("--alpha", type=click.Choice(ALPHAS), help="Keep alpha aside, or filter it too.")
@click.option("--scale", "prep_scale", type=float, help="Input as a model saw it: x·SCALE (1/255 for 0..1) …")
@click.option("--mean", "prep_mean", metavar="M[,M…]", help="… minus MEAN per channel (e.g. 0.485,0.456,0.406) …")
@click.option("--std", "prep_std", metavar="S[,S…]", help="… divided by STD per channel (e.g. 0.229,0.224,0.225).")
@click.option("--bgr", is_flag=True, help="Feed the kernel B, G, R (models trained on OpenCV's images).")
@click.option("--montage", is_flag=True, help="Every channel of the result in one labelled picture, each stretched.")
@click.option("--split", is_flag=True, help="One image per channel of the result (OUT-00.png, …), each stretched.")
@click.option("--format", "fmt", help=f"Output format for standard output or an output folder ({', '.join(FORMATS)}).")
@click.option("--quality", type=click.IntRange(0, 100), default=95, show_default=True, help="JPEG/WebP quality.")
@click.option("--compression", type=click.IntRange(0, 9), help="PNG compression level (default OpenCV's, 1).")
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse inputs whose header claims more pixels (decompression bombs).",
)
@click.option("--allow-truncated", is_flag=True, help="Decode what there is of a cut-off JPEG, PNG or WebP.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Worker processes for several inputs [all cores].")
@click.option("-r", "--recursive", is_flag=True, help="Descend into sub-folders; the output mirrors the tree.")
@click.option("--skip-existing", is_flag=True, help="In a batch, leave outputs that already exist.")
@click.option("--fail-fast", is_flag=True, help="In a batch, stop at the first file that fails.")
@click.option("--cluster", metavar="ADDRESS", help="Run a batch on Dask: tcp://host:8786, or local:N workers.")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object per image.")
@click.option("-q", "--quiet", is_flag=True, help="No report.")
def filter_command(
    kernel_ref, inputs, output, groups, depthwise, dense, params, padding, stride, dilation, flip, range_policy,
    alpha, prep_scale, prep_mean, prep_std, bgr, montage, split, fmt, quality, compression, max_pixels,
    allow_truncated, jobs, recursive, skip_existing, fail_fast, cluster, as_json, quiet,
):  # fmt: skip
    """Filter INPUT with KERNEL: a built-in name (see 'convfilter list'), or a .yaml or .npy file.

    INPUT is an image file or - for standard input; with no INPUT, a piped standard input is read.
    """
    from . import library
    from .imageio import quiet_opencv, read_bytes
    from .outputs import make_folder, plan_outputs
    from .pipeline import Options, filter_bytes, filter_file, write_result

    quiet_opencv()

    limits = Limits(max_pixels, allow_truncated)
    # one image file to a file: decoded on a thread of its own while the kernel loads (the modules
    # are imported first: an import that fails for want of memory would hide the decoder's error)
    reading = _read_early(inputs, output, limits)

    try:
        kernel = library.load_kernel(kernel_ref, parse_params(params)).with_options(
            mix=parse_mix(groups, depthwise, dense),
            padding=padding,
            stride=stride,
            dilation=dilation,
            flip=flip,
            range=range_policy,
            alpha=alpha,
        )
        planned = plan_outputs(
            inputs, output, fmt, recursive, skip_existing,
            stdin_is_terminal=_is_terminal(sys.stdin), stdout_is_terminal=_is_terminal(sys.stdout),
        )  # fmt: skip
        options = Options(None, quality, compression, limits)
        options = replace(options, **_maps_options(prep_scale, prep_mean, prep_std, bgr, montage, split, output))
        single = planned.folder is None and len(planned.jobs) == 1
        early = reading if single and reading is not None and planned.jobs[0].input == reading.path else None
        if reading is not None and early is None:
            reading.wait()
        if planned.folder is not None:
            return _batch(planned, kernel, options, jobs, fail_fast, cluster, as_json, quiet)
        if cluster:
            raise UsageError("option --cluster: runs a batch; give a folder or several inputs and -o FOLDER")
        (job,) = planned.jobs
        options = replace(options, format=job.format)
        if job.output is not None:
            make_folder(job.output.parent)  # -o NEWDIR/ for one input makes the folder, as a batch does
        if job.input is None or job.output is None:
            data = read_bytes(job.input, options.limits)
            name = "<stdin>" if job.input is None else str(job.input)
            encoded, result = filter_bytes(data, name, kernel, options, output=str(job.output or "-"))
            if job.output is None:
                _write_stdout(encoded)
            else:
                write_result(job.output, encoded)
        else:
            result = filter_file(job.input, job.output, kernel, options, early)
    except BaseException:
        if reading is not None:
            reading.wait()  # its decoder silences stderr while it runs: the error is printed after
        raise
    if not quiet:
        for note in result.notes:
            click.echo(f"convfilter: note: {note}", err=True)
        # the report goes to stderr, except a JSON report when stdout is free for it
        _report(result, as_json, err=job.output is None or not as_json)
    return 0


def _batch(planned, kernel, options, jobs, fail_fast, cluster, as_json, quiet) -> int:
    """Several inputs, or a folder, into a folder: one line per failure, a summary last."""
    from .batchrun import run_batch

    return run_batch(planned, kernel, options, jobs, fail_fast, cluster, as_json, quiet)


def _maps_options(scale, mean, std, bgr, montage, split, output) -> dict:
    """The ``Options`` fields of --scale/--mean/--std/--bgr and --montage/--split."""
    from .maps import Prepare, parse_values

    if montage and split:
        raise UsageError("options --montage and --split exclude each other")
    if split and (output is None or output == "-"):
        raise UsageError("option --split writes one file per channel: give -o FILE (or -o FOLDER/)")
    prepare = None
    if scale is not None or mean or std or bgr:
        prepare = Prepare(
            1.0 if scale is None else scale, parse_values(mean, "--mean"), parse_values(std, "--std"), bgr
        )
    return {"prepare": prepare, "maps": "montage" if montage else "split" if split else None}


def _read_early(inputs: tuple[str, ...], output: str | None, limits: Limits):
    """A ``Reading`` of the one input when it is a regular file and the output a file, else None
    (standard input, folders and batches are read where they are used)."""
    from .imageio import Reading

    if len(inputs) != 1 or inputs[0] == "-" or output in (None, "-"):
        return None
    try:
        regular = stat.S_ISREG(os.stat(inputs[0]).st_mode)
    except (OSError, ValueError):  # missing, unreadable, a name the system refuses: said where it is read
        return None
    return Reading(Path(inputs[0]), limits) if regular else None


def _is_terminal(stream) -> bool:
    """Whether ``stream`` is a terminal; a stream closed before the command started is not."""
    try:
        return stream is not None and stream.isatty()
    except ValueError:
        return False


def _write_stdout(data) -> None:
    """Write encoded pieces to standard output, every byte of each (a pipe takes part of one at a time)."""
    if sys.stdout is None:  # closed before the command started
        raise ImageError("output <stdout>: cannot write (standard output is closed)")
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError):  # not a real file (a test runner's capture): no partial writes there
        for piece in data:
            sys.stdout.buffer.write(piece)
        sys.stdout.flush()
        return
    sys.stdout.flush()
    # write() on a pipe may take fewer bytes than offered: loop until every byte is out
    try:
        for piece in data:
            view = memoryview(piece).cast("B")
            while view:
                view = view[os.write(fd, view) :]
    except BrokenPipeError:
        raise
    except OSError as error:  # a full disk (/dev/full), a closed descriptor
        raise ImageError(f"output <stdout>: cannot write ({error.strerror})") from None


def _report(result, as_json: bool, err: bool) -> None:
    from .report import describe_layer

    if as_json:
        click.echo(json.dumps(result.to_json()), err=err)
        return
    click.echo(describe_layer(result.layer, result.out_size), err=True)
    click.echo(f"{Path(result.input).name} → {result.output}  {result.seconds:.2f} s", err=True)


# --debug, on every command: the traceback instead of the one line, for an error that is a bug
_debug = {"on": False}
for _command in (filter_command, list_command, show_command, gallery_command, params_command):
    _command.params.append(
        click.Option(
            ["--debug"],
            is_flag=True,
            expose_value=False,
            is_eager=True,
            help="On an error, show the traceback instead of one line.",
            callback=lambda ctx, param, value: _debug.update(on=_debug["on"] or value),
        )
    )
for _command in (list_command, show_command, gallery_command, params_command):
    cli.add_command(_command)


def main() -> None:
    """Entry point of the ``convfilter`` command. A command that succeeded ends without Python's
    teardown of every module (OpenCV's and NumPy's take tens of milliseconds): its work is done
    and written, and its idle threads have nothing to finish. Not where it started a Dask
    cluster or processes that are to be ended the usual way."""
    try:
        cli.main()
    except SystemExit as done:
        processes = sys.modules.get("multiprocessing")
        if done.code == 0 and "distributed" not in sys.modules and not (processes and processes.active_children()):
            with contextlib.suppress(OSError, ValueError, AttributeError):  # else as Python would end
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
                os._exit(0)
        raise
