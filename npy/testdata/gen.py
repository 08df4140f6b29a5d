# Regenerates the golden .npy files in this folder with NumPy (Debian
# python3-numpy 1.24): /usr/bin/python3 gen.py
# Values follow formulas the Go tests recompute: v[i] = i*0.5 - 1 (floats),
# i*3 - 5 (signed ints), i*37 % 256 (uint8), i % 3 == 0 (bool).
import numpy as np
from numpy.lib import format as fmt

def vals(dtype, n):
    i = np.arange(n)
    if dtype in ('<f4', '<f8'):
        return (i * 0.5 - 1).astype(dtype)
    if dtype in ('<i8', '<i4'):
        return (i * 3 - 5).astype(dtype)
    if dtype == '|u1':
        return (i * 37 % 256).astype(dtype)
    return (i % 3 == 0)

for name, dt in [('f4', '<f4'), ('f8', '<f8'), ('i8', '<i8'), ('i4', '<i4'), ('u1', '|u1'), ('b1', '|b1')]:
    np.save(f'{name}_2x3.npy', vals(dt, 6).reshape(2, 3))
np.save('f4_scalar.npy', np.float32(-1))
np.save('f8_0x3.npy', np.zeros((0, 3)))
np.save('i8_5.npy', vals('<i8', 5))
np.save('f4_2x3x4.npy', vals('<f4', 24).reshape(2, 3, 4))
for v in (2, 3):
    with open(f'f4_2x3_v{v}.npy', 'wb') as f:
        fmt.write_array(f, vals('<f4', 6).reshape(2, 3), version=(v, 0))
np.save('f4_2x3_fortran.npy', np.asfortranarray(vals('<f4', 6).reshape(2, 3)))
np.save('f4_2x3_bigendian.npy', vals('<f4', 6).reshape(2, 3).astype('>f4'))
np.save('f2_2x3.npy', vals('<f4', 6).reshape(2, 3).astype('<f2'))
np.save('c8_2.npy', np.array([1 + 2j, 3], dtype=np.complex64))
np.save('structured.npy', np.zeros(2, dtype=[('a', '<f4'), ('b', '<i8')]))
