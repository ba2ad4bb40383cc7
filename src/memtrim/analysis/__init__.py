"""Static analysis of a program: scopes and bindings, name resolution, the reference graph,
side-effect freedom, dynamic-use guards and reachability."""
