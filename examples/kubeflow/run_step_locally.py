"""Run a compiled pipeline's step on this machine, the way Kubeflow Pipelines runs it in its pod, and print its
outputs as KFP reads them.

The step's command line is resolved by the kfp SDK's own local-runner code (`kfp.local`): its input parameters
from the run's parameters (the pipeline's defaults, overridden by --param), its `{{$}}` executor input and its
output paths. The Secret and ConfigMap volumes the platform spec mounts are replaced by local directories
(--mount MOUNT_PATH=DIR; an OPTIONAL volume given no directory is an empty one, as Kubernetes mounts an absent
optional Secret or ConfigMap). After the command ends, the outputs are read back with `kfp.local` too.

    python run_step_locally.py PIPELINE.yaml --binary ./kubectl-tprotect \\
        --param ontap_cluster_mgmt_hostname=cluster2.example.com --mount /mnt/secret=./secret

prints one JSON document: {"exit_code": N, "command": [...], "stdout": "...", "stderr": "...",
"outputs": {name: value, ...}} (Metrics artifacts as {"name", "uri", "metadata"}).

It uses `kfp.local` internals (their versions pinned by requirements.txt): for tests and for trying the step
against a cluster from a workstation, not for production runs. The tests in tests/tests/kubeflow.rs use it.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import yaml
from google.protobuf import json_format
from kfp import dsl
from kfp.local import executor_input_utils, executor_output_utils, placeholder_utils
from kfp.pipeline_spec import pipeline_spec_pb2


def pairs(values, flag):
    result = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep:
            sys.exit(f"{flag} {value!r}: expected NAME=VALUE")
        result[key] = rest
    return result


def task_arguments(spec, task, run_parameters):
    """The task's input parameters, from the run's parameters (the pipeline's defaults unless given)."""
    pipeline_inputs = spec.root.input_definitions.parameters
    unknown = set(run_parameters) - set(pipeline_inputs)
    if unknown:
        sys.exit(f"--param: the pipeline has no parameter {sorted(unknown)}")
    arguments = {}
    for name, spec_input in task.inputs.parameters.items():
        if spec_input.HasField("component_input_parameter"):
            parameter = spec_input.component_input_parameter
            if parameter in run_parameters:
                arguments[name] = run_parameters[parameter]
            elif pipeline_inputs[parameter].HasField("default_value"):
                arguments[name] = json_format.MessageToDict(pipeline_inputs[parameter].default_value)
            else:
                sys.exit(f"the pipeline parameter {parameter!r} has no default: give --param {parameter}=...")
        elif spec_input.HasField("runtime_value"):
            arguments[name] = json_format.MessageToDict(spec_input.runtime_value.constant)
        else:
            sys.exit(f"input {name!r} of the task comes from another task; this tool runs one-step pipelines")
    return arguments


def local_mounts(executor_platform, mounts, scratch):
    """Mount path -> local directory for every Secret and ConfigMap volume of the step."""
    resolved = {}
    volumes = [("Secret", v) for v in executor_platform.get("secretAsVolume", [])]
    volumes += [("ConfigMap", v) for v in executor_platform.get("configMapAsVolume", [])]
    for kind, volume in volumes:
        path = volume["mountPath"]
        if path in mounts:
            resolved[path] = os.path.abspath(mounts[path])
        elif volume.get("optional"):
            empty = os.path.join(scratch, "empty" + path.replace("/", "_"))
            os.makedirs(empty, exist_ok=True)
            resolved[path] = empty
        else:
            sys.exit(f"the step mounts a {kind} at {path} (not optional): give --mount {path}=DIR")
    unknown = set(mounts) - set(resolved)
    if unknown:
        sys.exit(f"--mount: the step mounts nothing at {sorted(unknown)}")
    return resolved


def remount(argument, mounts):
    for mount_path, local in mounts.items():
        if argument == mount_path or argument.startswith(mount_path + "/"):
            return local + argument[len(mount_path):]
    return argument


def jsonable(value):
    if isinstance(value, dsl.Artifact):
        return {"name": value.name, "uri": value.uri, "metadata": dict(value.metadata)}
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pipeline", help="compiled pipeline YAML")
    parser.add_argument("--binary", required=True, help="what to run in place of the step's command[0]")
    parser.add_argument("--task", help="the task to run (default: the root DAG's only task)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--mount", action="append", default=[], metavar="MOUNT_PATH=DIR")
    args = parser.parse_args()

    with open(args.pipeline) as f:
        documents = list(yaml.safe_load_all(f))
    spec = json_format.ParseDict(documents[0], pipeline_spec_pb2.PipelineSpec())
    platform = documents[1] if len(documents) > 1 else {}

    tasks = spec.root.dag.tasks
    if args.task is None and len(tasks) != 1:
        sys.exit(f"the pipeline has {len(tasks)} tasks: name one with --task")
    task_name = args.task or next(iter(tasks))
    task = tasks[task_name]
    component_name = task.component_ref.name
    component_spec = spec.components[component_name]
    executor_label = component_spec.executor_label
    container = documents[0]["deploymentSpec"]["executors"][executor_label]["container"]
    executor_platform = (
        platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
        .get(executor_label, {})
    )

    with tempfile.TemporaryDirectory() as scratch:
        pipeline_root = os.path.join(scratch, "pipeline-root")
        pipeline_resource_name = executor_input_utils.get_local_pipeline_resource_name(spec.pipeline_info.name)
        task_resource_name = executor_input_utils.get_local_task_resource_name(component_name)
        task_root = executor_input_utils.construct_local_task_root(
            pipeline_root=pipeline_root,
            pipeline_resource_name=pipeline_resource_name,
            task_resource_name=task_resource_name,
        )
        executor_input = executor_input_utils.construct_executor_input(
            component_spec=component_spec,
            arguments=task_arguments(spec, task, pairs(args.param, "--param")),
            task_root=task_root,
            block_input_artifact=True,
        )
        command = placeholder_utils.replace_placeholders(
            full_command=list(container.get("command", [])) + list(container.get("args", [])),
            executor_input_dict=executor_input_utils.executor_input_to_dict(executor_input, component_spec),
            pipeline_resource_name=pipeline_resource_name,
            task_resource_name=task_resource_name,
            pipeline_root=pipeline_root,
            unique_pipeline_id=placeholder_utils.make_random_id(),
        )
        mounts = local_mounts(executor_platform, pairs(args.mount, "--mount"), scratch)
        command = [args.binary] + [remount(argument, mounts) for argument in command[1:]]
        finished = subprocess.run(command, capture_output=True, text=True)
        outputs = {}
        if finished.returncode == 0:
            outputs = {
                name: jsonable(value)
                for name, value in executor_output_utils.get_outputs_for_task(
                    executor_input=executor_input, component_spec=component_spec
                ).items()
            }
    json.dump(
        {
            "exit_code": finished.returncode,
            "command": command,
            "stdout": finished.stdout,
            "stderr": finished.stderr,
            "outputs": outputs,
        },
        sys.stdout,
        indent=2,
    )
    print()


if __name__ == "__main__":
    main()
