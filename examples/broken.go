package main

// Sum adds the numbers, but a model forgot to close the loop's condition.
func Sum(xs []int) int {
	total := 0
	for i := 0; i < len(xs {
		total += xs[i]
	}
	return total
}
