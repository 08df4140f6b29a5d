package rewrite

// RelErr is relErr for the external tests: ‖a − b‖ / ‖b‖.
var RelErr = relErr
