# MPI helpers of the CLI tests (source after common.bash). Skips the test
# (exit 77, with the reason) when kvlab was built without MPI or mpirun is
# missing. Works as root, with more ranks than cores.
"$KVLAB" --version | grep -q "MPI" || { echo "SKIP: kvlab was built without MPI (KVLAB_MPI=OFF or no MPI found)"; exit 77; }
command -v mpirun >/dev/null || { echo "SKIP: mpirun not found (apt-get install openmpi-bin)"; exit 77; }
# "${MPIRUN[@]}" -n N ARGS...: run ARGS on N ranks (started with & directly, $! is mpirun itself)
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
mpi() {  # mpi N ARGS...
  local n=$1; shift
  "${MPIRUN[@]}" -n "$n" "$@"
}
# rank_pid LAUNCHER_PID RANK: the process id of one rank started by that mpirun
rank_pid() {
  local p
  for p in $(pgrep -P "$1"); do
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
  fail "no rank $2 under mpirun $1"
}
