/* Optimizer steps of head_fit.Stack in one pass over its matrices, without the GIL.

In NumPy, Adam's step is seven passes over the stacked weights (an add, a square, an axpy, a square
root, an add, a divide and an axpy), each reading and writing a matrix that, for eight heads on
1,280-d features, is larger than a core's L2 cache. Here each element is read once and written once,
and the GIL is released while the loop runs. The arithmetic is the NumPy passes' in the same order,
in float32: head_fit.Stack's docstrings say what each factor is, and the tests check the steps
against Keras' optimizers.
*/

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

/* A float32, C-contiguous buffer of `obj`, writable if asked; 0 and an exception if not that. */
static int float_buffer(PyObject *obj, Py_buffer *view, int writable, const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) != 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a %sC-contiguous float32 array", name,
                     writable ? "writable " : "");
        return 0;
    }
    if (view->itemsize != 4 || view->format == NULL || strcmp(view->format, "f") != 0) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s must be float32", name);
        return 0;
    }
    return 1;
}

static void release(Py_buffer *views, int count) {
    for (int i = 0; i < count; i++) PyBuffer_Release(&views[i]);
}

/* Buffers for `names` from `objects`, writable where `writable` says; their element counts must be
   `sizes[i]` (or that of the first buffer when sizes[i] is -1). 0 and an exception otherwise. */
static int float_buffers(PyObject **objects, const char **names, const int *writable,
                         const Py_ssize_t *sizes, Py_buffer *views, int count) {
    for (int i = 0; i < count; i++) {
        if (!float_buffer(objects[i], &views[i], writable[i], names[i])) {
            release(views, i);
            return 0;
        }
        Py_ssize_t want = sizes[i] < 0 ? views[0].len : sizes[i] * 4;
        if (views[i].len != want) {
            release(views, i + 1);
            PyErr_Format(PyExc_ValueError, "%s has %zd elements, not %zd", names[i], views[i].len / 4,
                         want / 4);
            return 0;
        }
        /* The loops take their arrays as `restrict`: no two may share memory. */
        for (int j = 0; j < i; j++) {
            const char *a = views[i].buf, *b = views[j].buf;
            if (a < b + views[j].len && b < a + views[i].len) {
                release(views, i + 1);
                PyErr_Format(PyExc_ValueError, "%s and %s share memory", names[j], names[i]);
                return 0;
            }
        }
    }
    return 1;
}

/* On x86-64 the loops are compiled twice, for AVX2 (8 floats at a time, chosen at load time on CPUs
   that have it) and for the baseline's SSE2. Neither contracts into FMAs: both round as NumPy does. */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef VECTOR_CLONES
#define VECTOR_CLONES
#endif

/* Adam's step over n elements; the arrays never overlap. */
VECTOR_CLONES static void adam_run(float *restrict w, float *restrict m, float *restrict v,
                                   const float *restrict g, Py_ssize_t n, float c_square,
                                   float c_epsilon, float c_step) {
    for (Py_ssize_t i = 0; i < n; i++) {
        float moment = m[i] + g[i];
        float velocity = v[i] + c_square * (g[i] * g[i]);
        m[i] = moment;
        v[i] = velocity;
        w[i] += c_step * (moment / (sqrtf(velocity) + c_epsilon));
    }
}

PyDoc_STRVAR(adam_doc,
             "adam(weights, moment, velocity, gradient, square_scale, epsilon, step, decay=None,\n"
             "     columns=1)\n"
             "--\n\n"
             "One Adam step of head_fit.Stack, in place: per element g of `gradient`,\n"
             "moment += g; velocity += square_scale * g * g;\n"
             "weights = weights * decay[column] + step * moment / (sqrt(velocity) + epsilon),\n"
             "where the matrices have `columns` columns and `decay` (AdamW's factor per column) is\n"
             "1 when None. `gradient` is left as it was.");

static PyObject *adam(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"weights", "moment", "velocity", "gradient", "square_scale",
                               "epsilon", "step", "decay", "columns", NULL};
    PyObject *objects[5] = {NULL, NULL, NULL, NULL, Py_None};
    double square_scale, epsilon, step;
    Py_ssize_t columns = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOddd|On", keywords, &objects[0], &objects[1],
                                     &objects[2], &objects[3], &square_scale, &epsilon, &step,
                                     &objects[4], &columns))
        return NULL;
    if (columns < 1) {
        PyErr_SetString(PyExc_ValueError, "columns must be at least 1");
        return NULL;
    }
    const char *names[5] = {"weights", "moment", "velocity", "gradient", "decay"};
    const int writable[5] = {1, 1, 1, 0, 0};
    const Py_ssize_t sizes[5] = {-1, -1, -1, -1, columns};
    int count = objects[4] == Py_None ? 4 : 5;
    Py_buffer views[5];
    if (!float_buffers(objects, names, writable, sizes, views, count)) return NULL;
    Py_ssize_t n = views[0].len / 4;
    if (n % columns != 0) {
        release(views, count);
        PyErr_Format(PyExc_ValueError, "%zd elements are not rows of %zd columns", n, columns);
        return NULL;
    }
    float *w = views[0].buf, *m = views[1].buf, *v = views[2].buf;
    const float *g = views[3].buf, *decay = count == 5 ? views[4].buf : NULL;
    const float c_square = (float)square_scale, c_epsilon = (float)epsilon, c_step = (float)step;
    Py_BEGIN_ALLOW_THREADS
    if (decay == NULL) {
        adam_run(w, m, v, g, n, c_square, c_epsilon, c_step);
    } else {
        for (Py_ssize_t row = 0; row < n; row += columns) {
            for (Py_ssize_t j = 0; j < columns; j++) w[row + j] *= decay[j];
            adam_run(w + row, m + row, v + row, g + row, columns, c_square, c_epsilon, c_step);
        }
    }
    Py_END_ALLOW_THREADS
    release(views, count);
    Py_RETURN_NONE;
}

/* RMSprop's step over n elements; the arrays never overlap. */
VECTOR_CLONES static void rmsprop_run(float *restrict w, float *restrict v, const float *restrict g,
                                      Py_ssize_t n, float c_rho, float c_rest, float c_epsilon) {
    for (Py_ssize_t i = 0; i < n; i++) {
        float velocity = c_rho * v[i] + c_rest * (g[i] * g[i]);
        v[i] = velocity;
        w[i] -= g[i] / sqrtf(velocity + c_epsilon);
    }
}

PyDoc_STRVAR(rmsprop_doc,
             "rmsprop(weights, velocity, gradient, rho, epsilon)\n"
             "--\n\n"
             "One RMSprop step of head_fit.Stack, in place: per element g of `gradient`,\n"
             "velocity = rho * velocity + (1 - rho) * g * g;\n"
             "weights -= g / sqrt(velocity + epsilon).");

static PyObject *rmsprop(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"weights", "velocity", "gradient", "rho", "epsilon", NULL};
    PyObject *objects[3];
    double rho, epsilon;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOdd", keywords, &objects[0], &objects[1],
                                     &objects[2], &rho, &epsilon))
        return NULL;
    const char *names[3] = {"weights", "velocity", "gradient"};
    const int writable[3] = {1, 1, 0};
    const Py_ssize_t sizes[3] = {-1, -1, -1};
    Py_buffer views[3];
    if (!float_buffers(objects, names, writable, sizes, views, 3)) return NULL;
    const float c_rho = (float)rho, c_rest = (float)(1.0 - rho), c_epsilon = (float)epsilon;
    Py_BEGIN_ALLOW_THREADS
    rmsprop_run(views[0].buf, views[1].buf, views[2].buf, views[0].len / 4, c_rho, c_rest, c_epsilon);
    Py_END_ALLOW_THREADS
    release(views, 3);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"adam", (PyCFunction)(void (*)(void))adam, METH_VARARGS | METH_KEYWORDS, adam_doc},
    {"rmsprop", (PyCFunction)(void (*)(void))rmsprop, METH_VARARGS | METH_KEYWORDS, rmsprop_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_optimizers",
    .m_doc = "Optimizer steps of head_fit.Stack in one pass over its matrices, without the GIL.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__optimizers(void) { return PyModule_Create(&module); }
