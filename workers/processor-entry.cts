// CommonJS entry for piscina. piscina first tries require() on its task file; on Node >= 20.19
// require() can load an ES module, and when the preload and the first task race, the second
// import of a half-required module trips an internal assertion. A CommonJS file is required
// atomically, and the ESM processor is then loaded with import(), which tolerates the race.

type Task = { role: string };
type ProcessorModule = { default: (task: Task) => Promise<unknown> };

export = async function runProcessorTask(task: Task): Promise<unknown> {
  const mod = (await import('./processor.js')) as ProcessorModule;
  return mod.default(task);
};
