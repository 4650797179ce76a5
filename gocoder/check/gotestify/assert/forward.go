package assert

// Assertions carries the TestingT, as testify's assert.New(t) does; its methods forward to the
// package functions.
type Assertions struct{ t TestingT }

// New makes an Assertions for t.
func New(t TestingT) *Assertions { return &Assertions{t} }

func (a *Assertions) Equal(expected, actual interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return Equal(a.t, expected, actual, msgAndArgs...)
}
func (a *Assertions) NotEqual(expected, actual interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return NotEqual(a.t, expected, actual, msgAndArgs...)
}
func (a *Assertions) EqualValues(expected, actual interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return EqualValues(a.t, expected, actual, msgAndArgs...)
}
func (a *Assertions) True(value bool, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return True(a.t, value, msgAndArgs...)
}
func (a *Assertions) False(value bool, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return False(a.t, value, msgAndArgs...)
}
func (a *Assertions) Nil(object interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return Nil(a.t, object, msgAndArgs...)
}
func (a *Assertions) NotNil(object interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return NotNil(a.t, object, msgAndArgs...)
}
func (a *Assertions) Empty(object interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return Empty(a.t, object, msgAndArgs...)
}
func (a *Assertions) NotEmpty(object interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return NotEmpty(a.t, object, msgAndArgs...)
}
func (a *Assertions) Len(object interface{}, length int, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return Len(a.t, object, length, msgAndArgs...)
}
func (a *Assertions) InDelta(expected, actual interface{}, delta float64, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return InDelta(a.t, expected, actual, delta, msgAndArgs...)
}
func (a *Assertions) ElementsMatch(listA, listB interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return ElementsMatch(a.t, listA, listB, msgAndArgs...)
}
func (a *Assertions) Contains(s, contains interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return Contains(a.t, s, contains, msgAndArgs...)
}
func (a *Assertions) NotContains(s, contains interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return NotContains(a.t, s, contains, msgAndArgs...)
}
func (a *Assertions) Greater(e1, e2 interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return Greater(a.t, e1, e2, msgAndArgs...)
}
func (a *Assertions) GreaterOrEqual(e1, e2 interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return GreaterOrEqual(a.t, e1, e2, msgAndArgs...)
}
func (a *Assertions) Less(e1, e2 interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return Less(a.t, e1, e2, msgAndArgs...)
}
func (a *Assertions) LessOrEqual(e1, e2 interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return LessOrEqual(a.t, e1, e2, msgAndArgs...)
}
func (a *Assertions) NoError(err error, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return NoError(a.t, err, msgAndArgs...)
}
func (a *Assertions) Error(err error, msgAndArgs ...interface{}) bool {
	if h, ok := a.t.(helper); ok {
		h.Helper()
	}
	return Error(a.t, err, msgAndArgs...)
}
