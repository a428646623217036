"""The loopback test bed the tests (tests/) and the benchmarks (bench/) share.

    ports        ports drawn per pytest-xdist worker, disjoint between workers
    fleet        a fleet of edges: real sshd on 127.0.0.x, started and stopped by PID
    ansible_run  real ansible-playbook from the repository root, its results as JSON
    deploy       the deploy bench: loopback edges, GPUSRV on this machine, bench releases
    load         background traffic at a constant rate during a deploy
    testserver   edgeinfer_validate's calibration server as a child process, and how a child is stopped
    sidecar      release directories built from the production model's files (shared fixtures), a real sidecar process

It imports nothing of tests/, so that bench/ can use it and tests/ can test bench/.
"""
