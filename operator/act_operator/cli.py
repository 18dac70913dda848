"""`actjob`: run an ACTJob (or an ACTExperiment: arms x seeds of ACTJobs) on this machine, or check one.

    actjob run examples/quickstart.yaml     # every stage, locally, with a summary at the end
    actjob validate examples/quickstart.yaml
    actjob render examples/quickstart.yaml  # the exact objects the operator would create
    actjob crd > crds/actjob.yaml            # (actjob crd ACTExperiment > crds/actexperiment.yaml)
    actjob status NAME -n NAMESPACE          # an ACTJob on the cluster, stage by stage
    actjob compare .act/runs/a .act/runs/b   # paper-style table of finished runs (--plot out.png)
    actjob logs NAME [STAGE] [--attempt N]   # a stage attempt's log, after its pods are gone
    actjob transcript NAME [--episode E]     # one eval episode, step by step (--list: every episode)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from act_operator.api import SpecError, parse_actjob, read_yaml


def _load(path: str, console: Console):
    """An ACTJob, or an ACTExperiment (arms x seeds of ACTJobs), from a file; with this machine's own
    rule for a relative file:// root (local.root_problems: it must stay under the working directory)."""
    from act_operator.local import root_problems

    kind = "ACTJob"
    try:
        data = read_yaml(path)
        if isinstance(data, dict) and data.get("kind") == "ACTExperiment":
            from act_operator.experiment import parse_experiment

            kind = "ACTExperiment"
            exp = parse_experiment(data)
            if problems := root_problems(exp.spec.template.storage.root):
                raise SpecError([p.replace("spec.", "spec.template.", 1) for p in problems])
            return exp
        job = parse_actjob(data)
        if problems := root_problems(job.spec.storage.root):
            raise SpecError(problems)
        return job
    except SpecError as e:
        console.print(f"[red]{path}: invalid {kind} ({len(e.problems)} problem(s)):[/]")
        for p in e.problems:
            console.print(f"  - {p}", highlight=False, markup=False, soft_wrap=True)
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="actjob", description="ACT operator command line")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run every stage of an ACTJob on this machine")
    run.add_argument("file")
    run.add_argument("--workdir", default=".act", help="where run state, logs and the local MLflow store go")
    run.add_argument("--fresh", action="store_true",
                     help="start over instead of resuming a stopped run or trying a failed one again")
    val = sub.add_parser("validate", help="check an ACTJob file and print its problems")
    val.add_argument("file")
    ren = sub.add_parser("render", help="print the Kubernetes objects the operator would create (like helm template)")
    ren.add_argument("file")
    crd_ = sub.add_parser("crd", help="print a CustomResourceDefinition generated from the API models")
    crd_.add_argument("kind", nargs="?", default="ACTJob", choices=["ACTJob", "ACTExperiment"])
    cmp_ = sub.add_parser("compare", help="paper-style table of finished local runs (IL vs IL w/ ACT ...)")
    cmp_.add_argument("runs", nargs="+", help="run directories (.act/runs/NAME) or their state.json; an "
                                             "ACTExperiment's run directory prints its Table 1")
    cmp_.add_argument("--metrics", default="", help="comma-separated metrics (default: all eval metrics)")
    cmp_.add_argument("--plot", metavar="PNG", help="also draw the comparison (bars with std, the paper's numbers)")
    st = sub.add_parser("status", help="show an ACTJob's stages from the cluster")
    st.add_argument("name")
    st.add_argument("-n", "--namespace", default="default")
    lg = sub.add_parser("logs", help="a stage attempt's log (every pod and rank), also after its Jobs were deleted")
    lg.add_argument("name")
    lg.add_argument("stage", nargs="?", help="preflight, collect, judge, policy or eval (default: every stage that ran)")
    lg.add_argument("--attempt", type=int, help="which attempt (default: the latest)")
    lg.add_argument("-n", "--namespace", help="read the ACTJob from the cluster (default: the local run of NAME "
                                              "under --workdir if there is one, else namespace default)")
    lg.add_argument("--workdir", default=".act", help="where `actjob run` keeps its runs")
    tr = sub.add_parser("transcript", help="one eval episode step by step: observation, the model's output "
                                           "(reasoning included), its action and the reward")
    tr.add_argument("name")
    tr.add_argument("--split", help="which split's episode (default: the first split eval played)")
    tr.add_argument("--episode", help="an episode id, or its position in the split (0: the first, the default)")
    tr.add_argument("--list", action="store_true", help="list every episode eval played (split, id, outcome)")
    tr.add_argument("-n", "--namespace", help="read the ACTJob from the cluster (default: the local run of NAME "
                                              "under --workdir if there is one, else namespace default)")
    tr.add_argument("--workdir", default=".act", help="where `actjob run` keeps its runs")
    args = parser.parse_args(argv)
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 150)

    if args.command == "crd":
        from act_operator.crd import render_yaml

        sys.stdout.write(render_yaml(args.kind))
        return 0
    if args.command == "status":
        return _status(args.namespace, args.name, console)
    if args.command == "logs":
        return _logs(args, console)
    if args.command == "transcript":
        return _transcript(args, console)
    if args.command == "compare":
        from act_operator.local_experiment import arms_table, load_experiment_state
        from act_operator.report import load_run, plot, table

        out = Console(width=None if sys.stdout.isatty() else 200)
        metrics = [m for m in args.metrics.split(",") if m] or None
        states = {r: load_experiment_state(Path(r)) for r in args.runs}
        for name, spec, status in filter(None, states.values()):  # an experiment's run directory: its Table 1
            out.print(arms_table(name, spec, status, metrics))
        runs = [load_run(Path(r)) for r, state in states.items() if state is None]
        if runs:
            out.print(table(runs, metrics))
            if args.plot:
                console.print(f"plot: {plot(runs, args.plot, metrics)}")
        return 0
    job = _load(args.file, console)
    if job is None:
        return 2
    if args.command == "validate":
        console.print(f"[green]{args.file}: valid[/]")
        return 0
    if job.kind == "ACTExperiment":
        return _experiment(args, job, console)
    if args.command == "render":
        import yaml

        from act_operator.manifests import all_stage_objects
        from act_operator.settings import OperatorSettings
        from act_trainer import gguf_models, stagedefs

        class Dumper(yaml.SafeDumper):  # multi-line strings (the stage config) as readable blocks
            pass

        Dumper.add_representer(str, lambda d, s: d.represent_scalar(
            "tag:yaml.org,2002:str", s, style="|" if "\n" in s else None))
        sys.stdout.write(yaml.dump_all(all_stage_objects(job, OperatorSettings()), Dumper=Dumper, sort_keys=False))
        if gguf_models.is_gguf(job.spec.model.uri):  # before the preflight ran, the converted URI is unknown
            stored = gguf_models.stored_uri(stagedefs.models_root(job.spec), "<its sha256>")
            console.print(f"note: spec.model.uri {job.spec.model.uri} is a GGUF file: the preflight converts it once "
                          f"into {stored}, and the stages after it start from that checkpoint, not from the source "
                          "these configs name", highlight=False, markup=False, soft_wrap=True)
        return 0
    from act_operator.local import LocalExecutor
    from act_operator.preflight import local_problems

    if _cannot_run(args.file, local_problems(job), console):
        return 2
    return _owned(console, lambda: 0 if LocalExecutor(job, Path(args.workdir), console, fresh=args.fresh).run(
        ).status.phase == "Succeeded" else 1)


def _owned(console: Console, run) -> int:
    """`run()`'s exit code; 2 when another `actjob run` holds the run directory (it is named), and the
    shell's 128 + signal when a stop signal stopped the run (its stages stopped with it)."""
    from act_operator.local_processes import RunLocked, Stopped

    try:
        return run()
    except RunLocked as e:
        console.print(f"[red]cannot run: {e}[/]", highlight=False)
        return 2
    except Stopped as e:
        return e.exit_code


def _cannot_run(path: str, problems: list[str], console: Console) -> bool:
    """Print what keeps a file from running on this machine (nothing has started); True if anything does."""
    if problems:
        console.print(f"[red]{path}: cannot run on this machine ({len(problems)} problem(s)); no stage started:[/]")
        for p in problems:
            console.print(f"  - {p}", highlight=False, markup=False, soft_wrap=True)
    return bool(problems)


def _experiment(args, exp, console: Console) -> int:
    """`actjob run|render` of an ACTExperiment: its children one after another here; on a cluster
    the operator creates them (render prints the first wave: the children that depend on nothing)."""
    from act_operator import experiment as E

    if args.command == "render":
        import yaml

        first = [a for a in E.plan(exp.metadata.name, exp.spec, {}) if isinstance(a, E.CreateChild)]
        sys.stdout.write(yaml.safe_dump_all([{"apiVersion": exp.api_version, "kind": "ACTJob", "metadata": {
            "name": a.name, "namespace": exp.metadata.namespace, "labels": a.labels}, "spec": a.spec} for a in first],
            sort_keys=False))
        return 0
    from act_operator.local_experiment import LocalExperiment
    from act_operator.preflight import local_problems

    template = E.child_spec(exp.spec, E.children(exp.spec)[0], {})
    if _cannot_run(args.file, local_problems(parse_actjob({"metadata": {"name": exp.metadata.name},
                                                            "spec": template})), console):
        return 2
    return _owned(console, lambda: 0 if LocalExperiment(exp, Path(args.workdir), console, fresh=args.fresh).run(
        ).phase == "Succeeded" else 1)


def _status(namespace: str, name: str, console: Console) -> int:
    from kubernetes import config

    from act_operator import kube
    from act_operator.api import parse_actjob
    from act_operator.local import summary_table

    config.load_kube_config()
    body = kube.read_actjob(namespace, name)
    if body is None:
        console.print(f"[red]actjob {namespace}/{name} not found[/]")
        return 1
    job = parse_actjob(body)
    Console(width=None if sys.stdout.isatty() else 150).print(summary_table(job))
    st = job.status
    for c in st.conditions:
        console.print(f"  {c.type}={c.status} ({c.reason}) {c.message}", highlight=False)
    if st.mlflow.url or st.mlflow.run_id:
        console.print(f"  mlflow: {st.mlflow.url or st.mlflow.run_id}")
    if st.model_uri:
        console.print(f"  model: {st.model_uri}  registered: {st.registered_model or '-'}")
    return 0


def _logs(args, console: Console) -> int:
    from act_operator import logs

    local = None if args.namespace else logs.local_run(Path(args.workdir), args.name)
    try:
        if local:
            status, run_dir = local
            pairs = logs.chosen(status, args.stage, args.attempt)
            fetch = lambda stage, attempt: logs.local_logs(run_dir, stage, attempt)  # noqa: E731
        else:
            job = _cluster_actjob(args, console)
            if job is None:
                return 1
            pairs = logs.chosen(job.status, args.stage, args.attempt)
            fetch = lambda stage, attempt: logs.cluster_logs(job, stage, attempt)  # noqa: E731
        for text in logs.show(pairs, fetch):
            sys.stdout.write(text)
    except logs.NoLogs as e:
        console.print(f"[red]{args.name}: {e}[/]", highlight=False)
        return 1
    return 0


def _cluster_actjob(args, console: Console):
    """The ACTJob `args.name` in `args.namespace` (the kubeconfig's cluster), or None, said, when there
    is none (nor a local run under --workdir)."""
    from kubernetes import config

    from act_operator import kube
    from act_operator.api import parse_actjob

    config.load_kube_config()
    namespace = args.namespace or "default"
    body = kube.read_actjob(namespace, args.name)
    if body is None:
        console.print(f"[red]actjob {namespace}/{args.name} not found (and no local run under "
                      f"{args.workdir}/runs/{args.name})[/]")
        return None
    return parse_actjob(body)


def _transcript(args, console: Console) -> int:
    """`actjob transcript`: eval's transcripts.jsonl (one per shard) read from its output, a local
    run's (through its status) or, as `actjob logs` does, a cluster ACTJob's with your own storage
    credentials."""
    from act_operator import logs
    from act_trainer import store, transcripts

    local = None if args.namespace else logs.local_run(Path(args.workdir), args.name)
    if local:
        status = local[0]
    else:
        job = _cluster_actjob(args, console)
        if job is None:
            return 1
        status, s3 = job.status, job.spec.storage.s3
        store.configure(endpoint=s3.endpoint, region=s3.region)
    uri = status.stages["eval"].outputs.uri if "eval" in status.stages else None
    try:
        if not uri:
            raise transcripts.NoTranscript("eval has not succeeded yet: its transcripts are published with its "
                                           "results")
        try:
            records = transcripts.read(uri)
        except store.StoreError as e:
            raise transcripts.NoTranscript(
                f"cannot read {uri} ({e}); transcripts are read with your own storage credentials "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and AWS_ENDPOINT_URL when the ACTJob names no "
                "endpoint)") from None
        if args.list and records:  # none: choose says why
            sys.stdout.write(transcripts.listing(records))
            return 0
        sys.stdout.write(transcripts.format_episode(transcripts.choose(records, args.split, args.episode)))
    except transcripts.NoTranscript as e:
        console.print(f"[red]{args.name}: {e}[/]", highlight=False)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
