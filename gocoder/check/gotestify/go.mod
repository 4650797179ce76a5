// gocoder's offline stand-in for github.com/stretchr/testify: the assert functions that the
// HumanEval-X and HumanEvalPack Go tests call, with testify's comparison semantics. The sandbox's
// go.mod points at this folder with a replace directive (no network, no module download).
module github.com/stretchr/testify

go 1.21
