"""Which of Slurm's pending reasons a sweep waits out and which it reports (mmlabel/experiments/slurm_pending.py);
the real Slurm's PartitionConfig, sbatch's refusal and a busy queue are in tests/test_slurm.py."""
import pytest

from mmlabel.experiments.slurm import SlurmOptions
from mmlabel.experiments.slurm_pending import fix_for_reason, is_permanent, pending_summary


@pytest.mark.parametrize("reason", ["PartitionConfig", "PartitionTimeLimit", "InvalidAccount", "InvalidQOS",
                                    "QOSNotAllowed", "BadConstraints", "QOSMaxCpuPerJobLimit",
                                    "AssocMaxWallDurationPerJobLimit", "QOSMaxGRESPerJob", "QOSMinCpuNotSatisfied"])
def test_reasons_that_waiting_cannot_end_are_permanent(reason):
    assert is_permanent(reason)


@pytest.mark.parametrize("reason", ["None", "Priority", "Resources", "JobArrayTaskLimit", "BeginTime",
                                    "ReqNodeNotAvail, UnavailableNodes:node1",
                                    "ReqNodeNotAvail, Reserved for maintenance", "PartitionNodeLimit",
                                    "QOSGrpCpuLimit", "AssocMaxJobsLimit", "QOSMaxCpuPerUserLimit", "JobHeldUser",
                                    "Dependency", "PartitionDown"])
def test_a_busy_or_recovering_cluster_is_waited_for(reason):
    assert not is_permanent(reason)


def test_the_fix_names_the_option_as_users_write_it():
    options = SlurmOptions(time=240, sbatch={"account": "myteam"})
    assert fix_for_reason("InvalidAccount", options, "gpu").startswith("--slurm sbatch.account=... (now myteam;")
    assert fix_for_reason("QOSMaxWallDurationPerJobLimit", options, None).startswith("a shorter --slurm time=")
    assert fix_for_reason("QOSNotAllowed", options, "gpu").startswith("--slurm sbatch.qos=... (not set;")


def test_the_status_line_counts_jobs_by_state_and_reason():
    jobs = {"7_0": ("RUNNING", "None"), "7_1": ("PENDING", "Priority"), "7_2": ("PENDING", "Resources"),
            "7_3": ("PENDING", "Priority")}
    assert pending_summary(jobs) == "1 running, 3 pending (Priority 2, Resources 1)"
    assert pending_summary({"8_0": ("PENDING", "None")}) == "1 pending (not scheduled yet)"
