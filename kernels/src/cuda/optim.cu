// Optimizer updates, elementwise over contiguous parameter, gradient and
// state buffers of the same dtype, following torch.optim's formulas.

#define KILN_OPTIM(T)                                                                   \
    /* SGD: d = g (+ wd * p); momentum buffer b = first ? d : mu*b + (1-damp)*d;      \
       d = nesterov ? d + mu*b : b; p -= lr * d. `buf` null when momentum == 0. */   \
    extern "C" __global__ void sgd_##T(i64 n, T* p, const T* __restrict__ g, T* buf,   \
                                       double lr, double momentum, double dampening,    \
                                       double weight_decay, int nesterov, int maximize, \
                                       int first_step) {                                \
        typedef Num<T>::acc A;                                                          \
        KILN_GRID_LOOP(i, n) {                                                          \
            A pv = Num<T>::to(p[i]);                                                    \
            A d = Num<T>::to(g[i]);                                                     \
            if (maximize) d = -d;                                                       \
            if (weight_decay != 0.0) d += (A)weight_decay * pv;                         \
            if (buf) {                                                                  \
                A b = first_step ? d                                                    \
                                 : (A)momentum * Num<T>::to(buf[i]) + ((A)1 - (A)dampening) * d; \
                buf[i] = Num<T>::from(b);                                               \
                d = nesterov ? d + (A)momentum * b : b;                                 \
            }                                                                           \
            p[i] = Num<T>::from(pv - (A)lr * d);                                        \
        }                                                                               \
    }                                                                                   \
    /* Adam / AdamW (decoupled=1). bc1 = 1 - beta1^t, bc2 = 1 - beta2^t computed    \
       by the host; `vmax` (amsgrad) may be null. */                                  \
    extern "C" __global__ void adam_##T(i64 n, T* p, const T* __restrict__ g, T* m,    \
                                        T* v, T* vmax, double lr, double beta1,         \
                                        double beta2, double eps, double weight_decay,  \
                                        int decoupled, int maximize, double bc1,        \
                                        double bc2) {                                   \
        typedef Num<T>::acc A;                                                          \
        KILN_GRID_LOOP(i, n) {                                                          \
            A pv = Num<T>::to(p[i]);                                                    \
            A gv = Num<T>::to(g[i]);                                                    \
            if (maximize) gv = -gv;                                                     \
            if (weight_decay != 0.0) {                                                  \
                if (decoupled) pv *= (A)1 - (A)lr * (A)weight_decay;                    \
                else gv += (A)weight_decay * pv;                                        \
            }                                                                           \
            A mv = Num<T>::to(m[i]);                                                    \
            mv += (gv - mv) * ((A)1 - (A)beta1);                                        \
            A vv = (A)beta2 * Num<T>::to(v[i]) + ((A)1 - (A)beta2) * gv * gv;           \
            m[i] = Num<T>::from(mv);                                                    \
            v[i] = Num<T>::from(vv);                                                    \
            A vden = vv;                                                                \
            if (vmax) {                                                                 \
                A vm = Num<T>::to(vmax[i]);                                             \
                vm = vm > vv ? vm : vv;                                                 \
                vmax[i] = Num<T>::from(vm);                                             \
                vden = vm;                                                              \
            }                                                                           \
            A denom = sqrt(vden) / (A)sqrt(bc2) + (A)eps;                               \
            p[i] = Num<T>::from(pv - ((A)lr / (A)bc1) * mv / denom);                    \
        }                                                                               \
    }                                                                                   \
    /* RMSprop: sq = a*sq + (1-a)*g^2; centered: gavg = a*gavg + (1-a)*g,             \
       avg = sqrt(sq - gavg^2) + eps, else sqrt(sq) + eps; with momentum:             \
       buf = mu*buf + g/avg, p -= lr*buf, else p -= lr*g/avg. */                       \
    extern "C" __global__ void rmsprop_##T(i64 n, T* p, const T* __restrict__ g, T* sq, \
                                           T* buf, T* gavg, double lr, double alpha,    \
                                           double eps, double weight_decay,             \
                                           double momentum, int maximize) {             \
        typedef Num<T>::acc A;                                                          \
        KILN_GRID_LOOP(i, n) {                                                          \
            A pv = Num<T>::to(p[i]);                                                    \
            A gv = Num<T>::to(g[i]);                                                    \
            if (maximize) gv = -gv;                                                     \
            if (weight_decay != 0.0) gv += (A)weight_decay * pv;                        \
            A a = (A)alpha;                                                             \
            A s = a * Num<T>::to(sq[i]) + ((A)1 - a) * gv * gv;                         \
            sq[i] = Num<T>::from(s);                                                    \
            A avg;                                                                      \
            if (gavg) {                                                                 \
                A ga = a * Num<T>::to(gavg[i]) + ((A)1 - a) * gv;                       \
                gavg[i] = Num<T>::from(ga);                                             \
                avg = sqrt(s - ga * ga) + (A)eps;                                       \
            } else {                                                                    \
                avg = sqrt(s) + (A)eps;                                                 \
            }                                                                           \
            if (buf) {                                                                  \
                A b = (A)momentum * Num<T>::to(buf[i]) + gv / avg;                      \
                buf[i] = Num<T>::from(b);                                               \
                p[i] = Num<T>::from(pv - (A)lr * b);                                    \
            } else {                                                                    \
                p[i] = Num<T>::from(pv - (A)lr * gv / avg);                             \
            }                                                                           \
        }                                                                               \
    }
KILN_FLOAT_TYPES(KILN_OPTIM)
