"""Kubeflow Pipelines (KFP v2): trigger a NetApp SnapMirror update and wait for it, with kubectl-tprotect.

The KFP v1 example this replaces pip-installed Ansible at run time and ran `na_ontap_snapmirror` with
`state: present`, which silently CREATES, RESYNCS or RESUMES relationships and only warns when one is unhealthy.
This step runs one static binary instead: `kubectl-tprotect snapmirror update --wait`, which looks the
relationship up by its destination, refuses (exit 1, with ONTAP's reasons) when it is missing, not
`snapmirrored` or unhealthy, starts exactly one transfer, and follows it to the end. A failed transfer fails the
step (exit 1); a wait longer than --timeout fails it with exit code 3.

Credentials: the Kubernetes Secret named by `ontap_cluster_admin_acct_k8s_secret` (keys `username`, `password`)
is MOUNTED at /mnt/secret and read with `--credentials-dir`. A volume rather than environment variables: the
values never enter the process environment (inherited by every child process, readable in /proc/<pid>/environ,
printed by env dumps and crash reporters), and the layout is the one the original example used.

Compile:  python snapmirror_pipeline.py [OUTPUT.yaml]      (the step image: $TPROTECT_STEP_IMAGE or the default)
"""

import os
import sys

from kfp import compiler, dsl, kubernetes

# The image built by examples/kubeflow/Dockerfile. Images cannot be pipeline parameters in KFP v2, so it is fixed
# at compile time; override with TPROTECT_STEP_IMAGE when compiling.
STEP_IMAGE = os.environ.get("TPROTECT_STEP_IMAGE", "ghcr.io/tprotect/kubectl-tprotect:0.1.0")
SECRET_MOUNT_PATH = "/mnt/secret"
# The non-root user of the step image (distroless "nonroot").
STEP_UID = 65532
# How long the step waits for the transfer (kubectl-tprotect --timeout), and a pod deadline a little longer as a
# backstop should the process hang.
UPDATE_TIMEOUT = "1h"
POD_DEADLINE_SECONDS = 65 * 60


@dsl.container_component
def snapmirror_update(
    ontap_cluster_mgmt_hostname: str,
    ontap_api_verify_ssl_cert: str,
    source_svm: str,
    source_volume: str,
    destination_svm: str,
    destination_volume: str,
):
    """Start a SnapMirror update of an existing relationship and wait until its transfer ends."""
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
            "--timeout",
            UPDATE_TIMEOUT,
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
):
    update = snapmirror_update(
        ontap_cluster_mgmt_hostname=ontap_cluster_mgmt_hostname,
        ontap_api_verify_ssl_cert=ontap_api_verify_ssl_cert,
        source_svm=source_svm,
        source_volume=source_volume,
        destination_svm=destination_svm,
        destination_volume=destination_volume,
    )
    update.set_display_name("SnapMirror update")
    # Same inputs do not mean same result: every run must start a new transfer, never reuse a cached one.
    update.set_caching_options(False)
    kubernetes.use_secret_as_volume(
        update,
        secret_name=ontap_cluster_admin_acct_k8s_secret,
        mount_path=SECRET_MOUNT_PATH,
    )
    kubernetes.set_security_context(update, run_as_user=STEP_UID, run_as_non_root=True)
    kubernetes.set_timeout(update, POD_DEADLINE_SECONDS)


if __name__ == "__main__":
    output = sys.argv[1] if len(sys.argv) > 1 else os.path.splitext(__file__)[0] + ".yaml"
    compiler.Compiler().compile(replicate_data, package_path=output)
