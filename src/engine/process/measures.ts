/**
 * `MODELOPS_RESOURCES=off`: no per-task bookkeeping at all (the runner's measures, the queue and
 * transfer times, the runners' memory watch), as production's engine keeps none; it exists so
 * that `bench:job` can tell what the bookkeeping costs, measured against the same build.
 */
export const RESOURCES_ENV = 'MODELOPS_RESOURCES';
export const MEASURE_TASKS = process.env[RESOURCES_ENV] !== 'off';
