"""Kubeflow Pipelines (KFP v2): trigger a NetApp SnapMirror update and wait for it, with kubectl-tprotect.

The KFP v1 example this replaces pip-installed Ansible at run time and ran `na_ontap_snapmirror` with
`state: present`, which silently CREATES, RESYNCS or RESUMES relationships and only warns when one is unhealthy.
This step runs one static binary instead: `kubectl-tprotect snapmirror update --wait`, which looks the
relationship up by its destination, refuses (exit 1, with ONTAP's reasons) when it is missing, not
`snapmirrored` or unhealthy, starts exactly one transfer, and follows it to the end. A failed transfer fails the
step (exit 1); a wait longer than `update_timeout` fails it with exit code 3; a transfer already in progress is
met as `if_busy` says (wait for it, then start a new one; skip; or fail with exit code 5).

Outputs (for the steps after this one): `result` (`updated`, or `skipped` with if_busy=skip), `state`
(the relationship's state after the transfer), `lag_seconds`, `bytes_transferred`, `transfer_end_time`, and a
Metrics artifact `metrics` with lag_seconds and bytes_transferred. The plugin writes them where KFP says: it is
given the executor input (`{{$}}`), which names each output's file, and writes the metrics into the artifact's
metadata the way KFP's own Python executor does.

Credentials: the Kubernetes Secret named by `ontap_cluster_admin_acct_k8s_secret` (keys `username`, `password`)
is MOUNTED at /mnt/secret and read with `--credentials-dir`. A volume rather than environment variables: the
values never enter the process environment (inherited by every child process, readable in /proc/<pid>/environ,
printed by env dumps and crash reporters), and the layout is the one the original example used.

CA: the cluster's certificate is checked against the image's system roots plus a CA from the Secret
`ontap_ca_secret` or the ConfigMap `ontap_ca_config_map`, key `ontap_ca_key`. Both are mounted as OPTIONAL
volumes (a pod cannot mount a volume chosen at run time, and an absent optional one is an empty directory),
and the plugin trusts whichever file is there (`--ca-file-if-present`); when the certificate is still not
trusted, its error names the files it looked for.

Compile:  python snapmirror_pipeline.py [OUTPUT.yaml]      (the step image: $TPROTECT_STEP_IMAGE or the default)
"""

import os
import sys

from kfp import compiler, dsl, kubernetes

# The image built by examples/kubeflow/Dockerfile. Images cannot be pipeline parameters in KFP v2, so it is fixed
# at compile time; override with TPROTECT_STEP_IMAGE when compiling.
STEP_IMAGE = os.environ.get("TPROTECT_STEP_IMAGE", "ghcr.io/tprotect/kubectl-tprotect:0.1.0")
SECRET_MOUNT_PATH = "/mnt/secret"
CA_SECRET_MOUNT_PATH = "/mnt/ontap-ca/secret"
CA_CONFIG_MAP_MOUNT_PATH = "/mnt/ontap-ca/configmap"
# The non-root user of the step image (distroless "nonroot").
STEP_UID = 65532
# A backstop should the process hang: the pod's deadline, fixed at compile time (KFP takes no parameter here),
# so `update_timeout` (kubectl-tprotect --timeout, a run-time parameter) must stay below it.
POD_DEADLINE_SECONDS = 6 * 3600 + 5 * 60


@dsl.container_component
def snapmirror_update(
    ontap_cluster_mgmt_hostname: str,
    ontap_api_verify_ssl_cert: str,
    source_svm: str,
    source_volume: str,
    destination_svm: str,
    destination_volume: str,
    ontap_ca_key: str,
    update_timeout: str,
    if_busy: str,
    result: dsl.OutputPath(str),
    state: dsl.OutputPath(str),
    lag_seconds: dsl.OutputPath(int),
    bytes_transferred: dsl.OutputPath(int),
    transfer_end_time: dsl.OutputPath(str),
    metrics: dsl.Output[dsl.Metrics],
):
    """Start a SnapMirror update of an existing relationship and wait until its transfer ends.

    The outputs are written by kubectl-tprotect from the executor input (--kfp-executor-input): `lag_seconds` and
    `bytes_transferred` are -1 and `transfer_end_time` empty where ONTAP reports nothing; a skipped update
    transferred 0 bytes.
    """
    return dsl.ContainerSpec(
        image=STEP_IMAGE,
        command=["kubectl-tprotect"],
        args=[
            "snapmirror",
            "update",
            "--wait",
            "--hostname",
            ontap_cluster_mgmt_hostname,
            "--source",
            dsl.ConcatPlaceholder([source_svm, ":", source_volume]),
            "--destination",
            dsl.ConcatPlaceholder([destination_svm, ":", destination_volume]),
            "--credentials-dir",
            SECRET_MOUNT_PATH,
            # yes/no (the original example's values) and true/false are both accepted by --verify-tls.
            "--verify-tls",
            ontap_api_verify_ssl_cert,
            "--ca-file-if-present",
            dsl.ConcatPlaceholder([CA_SECRET_MOUNT_PATH + "/", ontap_ca_key]),
            "--ca-file-if-present",
            dsl.ConcatPlaceholder([CA_CONFIG_MAP_MOUNT_PATH + "/", ontap_ca_key]),
            "--timeout",
            update_timeout,
            "--if-busy",
            if_busy,
            "--kfp-executor-input",
            dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER,
            "-o",
            "json",
        ],
    )


@dsl.pipeline(
    name="replicate-data",
    description="Trigger a NetApp SnapMirror update to replicate a volume between ONTAP clusters, and wait for it",
)
def replicate_data(
    ontap_cluster_mgmt_hostname: str = "",
    ontap_cluster_admin_acct_k8s_secret: str = "ontap-cluster-mgmt-account",
    ontap_api_verify_ssl_cert: str = "yes",
    source_svm: str = "ailab",
    source_volume: str = "sm",
    destination_svm: str = "ai221_data",
    destination_volume: str = "sm_dest",
    ontap_ca_secret: str = "ontap-ca",
    ontap_ca_config_map: str = "ontap-ca",
    ontap_ca_key: str = "ca.crt",
    update_timeout: str = "1h",
    if_busy: str = "wait",
):
    update = snapmirror_update(
        ontap_cluster_mgmt_hostname=ontap_cluster_mgmt_hostname,
        ontap_api_verify_ssl_cert=ontap_api_verify_ssl_cert,
        source_svm=source_svm,
        source_volume=source_volume,
        destination_svm=destination_svm,
        destination_volume=destination_volume,
        ontap_ca_key=ontap_ca_key,
        update_timeout=update_timeout,
        if_busy=if_busy,
    )
    update.set_display_name("SnapMirror update")
    # Same inputs do not mean same result: every run must start a new transfer, never reuse a cached one.
    update.set_caching_options(False)
    kubernetes.use_secret_as_volume(
        update,
        secret_name=ontap_cluster_admin_acct_k8s_secret,
        mount_path=SECRET_MOUNT_PATH,
    )
    kubernetes.use_secret_as_volume(
        update,
        secret_name=ontap_ca_secret,
        mount_path=CA_SECRET_MOUNT_PATH,
        optional=True,
    )
    kubernetes.use_config_map_as_volume(
        update,
        config_map_name=ontap_ca_config_map,
        mount_path=CA_CONFIG_MAP_MOUNT_PATH,
        optional=True,
    )
    kubernetes.set_security_context(update, run_as_user=STEP_UID, run_as_non_root=True)
    kubernetes.set_timeout(update, POD_DEADLINE_SECONDS)


if __name__ == "__main__":
    output = sys.argv[1] if len(sys.argv) > 1 else os.path.splitext(__file__)[0] + ".yaml"
    compiler.Compiler().compile(replicate_data, package_path=output)
