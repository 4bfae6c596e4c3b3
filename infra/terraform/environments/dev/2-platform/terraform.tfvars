# Not secret: which cluster this root manages.
kube_context = "medflow-dev"
