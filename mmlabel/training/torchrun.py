"""`python -m mmlabel.training.torchrun ARGS`: torchrun (`torch.distributed.run`, same arguments) for `mmlabel train
--nproc`, quiet about a worker's failure. The workers print their own errors (an error raised in every process, such
as bad data, once, by rank 0); torchrun would add its log lines and a ChildFailedError traceback and exit 1. Here it
exits with the failed worker's code instead (2 for a user's mistake), so that `--nproc N` fails as one process does.
"""
import logging
import sys


def main(argv: list[str]) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # its report of the failed workers
    try:
        run(parse_args(argv))
    except ChildFailedError as error:
        codes = [failure.exitcode for failure in error.failures.values()]
        return next((code for code in codes if code > 0), 1)  # a negative code is a worker killed by a signal
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
