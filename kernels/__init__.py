"""The built-in kernels: pure data, one YAML file a kernel, shipped inside the package as convfilter.kernels."""
