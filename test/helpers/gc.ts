// A full garbage collection on demand, without starting the test process with --expose-gc: memory bounds are
// about what stays live, and heapUsed without a collection first also counts garbage not yet collected (more
// of it on a loaded machine).
import v8 from 'node:v8';
import vm from 'node:vm';

v8.setFlagsFromString('--expose-gc');
export const gc = vm.runInNewContext('gc') as () => void;
