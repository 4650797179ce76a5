// Package assert is a subset of testify's assert package with the same comparison semantics:
// Equal is bytes.Equal for []byte and reflect.DeepEqual otherwise (so 1 and int64(1) differ),
// EqualValues converts the actual value to the expected one's type first, InDelta compares as
// float64, ElementsMatch ignores order but counts duplicates. Each function reports a failure
// with t.Errorf and returns whether the assertion held.
package assert

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"strings"
)

// TestingT is what the assertions need of *testing.T.
type TestingT interface {
	Errorf(format string, args ...interface{})
}

// helper is *testing.T's Helper: every function between a test and t.Errorf calls it, so that a
// failure is reported at the test's line, not at a line of this package (testify does the same).
type helper interface{ Helper() }

func fail(t TestingT, what string, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	msg := ""
	if len(msgAndArgs) == 1 {
		msg = fmt.Sprint(msgAndArgs[0])
	} else if len(msgAndArgs) > 1 {
		if f, ok := msgAndArgs[0].(string); ok {
			msg = fmt.Sprintf(f, msgAndArgs[1:]...)
		} else {
			msg = fmt.Sprint(msgAndArgs...)
		}
	}
	if msg != "" {
		what += "\nMessages: " + msg
	}
	t.Errorf("\nError: %s", what)
	return false
}

// ObjectsAreEqual is testify's equality: bytes.Equal for two []byte, else reflect.DeepEqual.
func ObjectsAreEqual(expected, actual interface{}) bool {
	if expected == nil || actual == nil {
		return expected == actual
	}
	exp, ok := expected.([]byte)
	if !ok {
		return reflect.DeepEqual(expected, actual)
	}
	act, ok := actual.([]byte)
	if !ok {
		return false
	}
	if exp == nil || act == nil {
		return exp == nil && act == nil
	}
	return bytes.Equal(exp, act)
}

// ObjectsAreEqualValues also accepts values that are equal once converted to the expected type.
func ObjectsAreEqualValues(expected, actual interface{}) bool {
	if ObjectsAreEqual(expected, actual) {
		return true
	}
	if expected == nil || actual == nil {
		return false
	}
	et, av := reflect.TypeOf(expected), reflect.ValueOf(actual)
	if !av.Type().ConvertibleTo(et) {
		return false
	}
	return reflect.DeepEqual(expected, av.Convert(et).Interface())
}

func isFunc(x interface{}) bool {
	return x != nil && reflect.TypeOf(x).Kind() == reflect.Func
}

// Equal asserts that expected and actual are equal (same type and deeply equal).
func Equal(t TestingT, expected, actual interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	if isFunc(expected) || isFunc(actual) {
		return fail(t, fmt.Sprintf("Invalid operation: %#v == %#v (cannot take func type as argument)", expected, actual), msgAndArgs...)
	}
	if !ObjectsAreEqual(expected, actual) {
		e, a := fmt.Sprintf("%#v", expected), fmt.Sprintf("%#v", actual)
		if e == a { // same text, different types: say which (testify does too)
			e, a = fmt.Sprintf("%T(%s)", expected, e), fmt.Sprintf("%T(%s)", actual, a)
		}
		return fail(t, fmt.Sprintf("Not equal: \nexpected: %s\nactual  : %s", e, a), msgAndArgs...)
	}
	return true
}

// NotEqual asserts that the two values are not equal.
func NotEqual(t TestingT, expected, actual interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	if isFunc(expected) || isFunc(actual) {
		return fail(t, "Invalid operation: cannot take func type as argument", msgAndArgs...)
	}
	if ObjectsAreEqual(expected, actual) {
		return fail(t, fmt.Sprintf("Should not be: %#v", actual), msgAndArgs...)
	}
	return true
}

// EqualValues asserts that the values are equal after converting actual to expected's type.
func EqualValues(t TestingT, expected, actual interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	if !ObjectsAreEqualValues(expected, actual) {
		return fail(t, fmt.Sprintf("Not equal: \nexpected: %#v\nactual  : %#v", expected, actual), msgAndArgs...)
	}
	return true
}

// True asserts that value is true.
func True(t TestingT, value bool, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	if !value {
		return fail(t, "Should be true", msgAndArgs...)
	}
	return true
}

// False asserts that value is false.
func False(t TestingT, value bool, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	if value {
		return fail(t, "Should be false", msgAndArgs...)
	}
	return true
}

func isNil(object interface{}) bool {
	if object == nil {
		return true
	}
	v := reflect.ValueOf(object)
	switch v.Kind() {
	case reflect.Chan, reflect.Func, reflect.Interface, reflect.Map, reflect.Ptr, reflect.Slice, reflect.UnsafePointer:
		return v.IsNil()
	}
	return false
}

// Nil asserts that object is nil (a nil interface, or a nil pointer, slice, map, chan or func).
func Nil(t TestingT, object interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	if !isNil(object) {
		return fail(t, fmt.Sprintf("Expected nil, but got: %#v", object), msgAndArgs...)
	}
	return true
}

// NotNil asserts that object is not nil.
func NotNil(t TestingT, object interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	if isNil(object) {
		return fail(t, "Expected value not to be nil.", msgAndArgs...)
	}
	return true
}

func isEmpty(object interface{}) bool {
	if object == nil {
		return true
	}
	v := reflect.ValueOf(object)
	switch v.Kind() {
	case reflect.Chan, reflect.Map, reflect.Slice, reflect.Array, reflect.String:
		return v.Len() == 0
	case reflect.Ptr:
		if v.IsNil() {
			return true
		}
		return isEmpty(v.Elem().Interface())
	}
	return reflect.DeepEqual(object, reflect.Zero(v.Type()).Interface())
}

// Empty asserts that object is its zero value or has length 0.
func Empty(t TestingT, object interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	if !isEmpty(object) {
		return fail(t, fmt.Sprintf("Should be empty, but was %v", object), msgAndArgs...)
	}
	return true
}

// NotEmpty asserts that object is neither its zero value nor of length 0.
func NotEmpty(t TestingT, object interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	if isEmpty(object) {
		return fail(t, fmt.Sprintf("Should NOT be empty, but was %v", object), msgAndArgs...)
	}
	return true
}

// Len asserts that object (string, slice, array, map or chan) has length length.
func Len(t TestingT, object interface{}, length int, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	v := reflect.ValueOf(object)
	switch v.Kind() {
	case reflect.Chan, reflect.Map, reflect.Slice, reflect.Array, reflect.String:
		if v.Len() != length {
			return fail(t, fmt.Sprintf("\"%v\" should have %d item(s), but has %d", object, length, v.Len()), msgAndArgs...)
		}
		return true
	}
	return fail(t, fmt.Sprintf("\"%v\" could not be applied builtin len()", object), msgAndArgs...)
}

func toFloat(x interface{}) (float64, bool) {
	v := reflect.ValueOf(x)
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(v.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return float64(v.Uint()), true
	case reflect.Float32, reflect.Float64:
		return v.Float(), true
	}
	return 0, false
}

// InDelta asserts that the two numbers differ by at most delta.
func InDelta(t TestingT, expected, actual interface{}, delta float64, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	e, ok1 := toFloat(expected)
	a, ok2 := toFloat(actual)
	if !ok1 || !ok2 {
		return fail(t, "Parameters must be numerical", msgAndArgs...)
	}
	if math.IsNaN(e) && math.IsNaN(a) {
		return true
	}
	if math.IsNaN(e) || math.IsNaN(a) {
		return fail(t, fmt.Sprintf("Expected %v and actual %v must not be NaN", e, a), msgAndArgs...)
	}
	if d := e - a; math.IsNaN(d) || d < -delta || d > delta {
		return fail(t, fmt.Sprintf("Max difference between %v and %v allowed is %v, but difference was %v", expected, actual, delta, d), msgAndArgs...)
	}
	return true
}

func isList(x interface{}) bool {
	if x == nil {
		return false
	}
	k := reflect.TypeOf(x).Kind()
	return k == reflect.Slice || k == reflect.Array
}

// ElementsMatch asserts that the two lists hold the same elements, in any order, duplicates counted.
func ElementsMatch(t TestingT, listA, listB interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	if isEmpty(listA) && isEmpty(listB) {
		return true
	}
	if !isList(listA) || !isList(listB) {
		return fail(t, fmt.Sprintf("%#v and %#v must be arrays or slices", listA, listB), msgAndArgs...)
	}
	a, b := reflect.ValueOf(listA), reflect.ValueOf(listB)
	used := make([]bool, b.Len())
	for i := 0; i < a.Len(); i++ {
		found := false
		for j := 0; j < b.Len(); j++ {
			if !used[j] && ObjectsAreEqual(a.Index(i).Interface(), b.Index(j).Interface()) {
				used[j], found = true, true
				break
			}
		}
		if !found {
			return fail(t, fmt.Sprintf("elements differ: %#v is not matched in %#v", a.Index(i).Interface(), listB), msgAndArgs...)
		}
	}
	for j := range used {
		if !used[j] {
			return fail(t, fmt.Sprintf("elements differ: extra %#v in %#v", b.Index(j).Interface(), listB), msgAndArgs...)
		}
	}
	return true
}

func includes(list, element interface{}) (ok, found bool) {
	lv := reflect.ValueOf(list)
	switch lv.Kind() {
	case reflect.String:
		ev := reflect.ValueOf(element)
		if ev.Kind() != reflect.String {
			return true, false
		}
		return true, strings.Contains(lv.String(), ev.String())
	case reflect.Map:
		for _, k := range lv.MapKeys() {
			if ObjectsAreEqual(k.Interface(), element) {
				return true, true
			}
		}
		return true, false
	case reflect.Slice, reflect.Array:
		for i := 0; i < lv.Len(); i++ {
			if ObjectsAreEqual(lv.Index(i).Interface(), element) {
				return true, true
			}
		}
		return true, false
	}
	return false, false
}

// Contains asserts that a string holds a substring, a list an element, or a map a key.
func Contains(t TestingT, s, contains interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	ok, found := includes(s, contains)
	if !ok {
		return fail(t, fmt.Sprintf("%#v could not be applied builtin len()", s), msgAndArgs...)
	}
	if !found {
		return fail(t, fmt.Sprintf("%#v does not contain %#v", s, contains), msgAndArgs...)
	}
	return true
}

// NotContains asserts the opposite of Contains.
func NotContains(t TestingT, s, contains interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	ok, found := includes(s, contains)
	if !ok {
		return fail(t, fmt.Sprintf("%#v could not be applied builtin len()", s), msgAndArgs...)
	}
	if found {
		return fail(t, fmt.Sprintf("%#v should not contain %#v", s, contains), msgAndArgs...)
	}
	return true
}

// compare orders two values of the same ordered kind: -1, 0, 1; ok false when they cannot be ordered.
func compare(a, b interface{}) (int, bool) {
	if a == nil || b == nil || reflect.TypeOf(a) != reflect.TypeOf(b) {
		return 0, false
	}
	if reflect.ValueOf(a).Kind() == reflect.String {
		return strings.Compare(reflect.ValueOf(a).String(), reflect.ValueOf(b).String()), true
	}
	x, ok1 := toFloat(a)
	y, ok2 := toFloat(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	switch {
	case x < y:
		return -1, true
	case x > y:
		return 1, true
	}
	return 0, true
}

func order(t TestingT, e1, e2 interface{}, want []int, rel string, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	c, ok := compare(e1, e2)
	if !ok {
		return fail(t, fmt.Sprintf("Elements should be the same ordered type: %#v, %#v", e1, e2), msgAndArgs...)
	}
	for _, w := range want {
		if c == w {
			return true
		}
	}
	return fail(t, fmt.Sprintf("\"%v\" is not %s \"%v\"", e1, rel, e2), msgAndArgs...)
}

// Greater asserts e1 > e2 (same ordered type).
func Greater(t TestingT, e1, e2 interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	return order(t, e1, e2, []int{1}, "greater than", msgAndArgs...)
}

// GreaterOrEqual asserts e1 >= e2.
func GreaterOrEqual(t TestingT, e1, e2 interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	return order(t, e1, e2, []int{1, 0}, "greater than or equal to", msgAndArgs...)
}

// Less asserts e1 < e2.
func Less(t TestingT, e1, e2 interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	return order(t, e1, e2, []int{-1}, "less than", msgAndArgs...)
}

// LessOrEqual asserts e1 <= e2.
func LessOrEqual(t TestingT, e1, e2 interface{}, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	return order(t, e1, e2, []int{-1, 0}, "less than or equal to", msgAndArgs...)
}

// NoError asserts that err is nil.
func NoError(t TestingT, err error, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	if err != nil {
		return fail(t, fmt.Sprintf("Received unexpected error:\n%+v", err), msgAndArgs...)
	}
	return true
}

// Error asserts that err is not nil.
func Error(t TestingT, err error, msgAndArgs ...interface{}) bool {
	if h, ok := t.(helper); ok {
		h.Helper()
	}
	if err == nil {
		return fail(t, "An error is expected but got nil.", msgAndArgs...)
	}
	return true
}
