// Holds its isolate for a while and allocates nothing of its own: what is measured is the isolate.
export default (input) => new Promise((resolve) => setTimeout(() => resolve(1), input.ms));
