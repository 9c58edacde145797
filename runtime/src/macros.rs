//! Macros used across the crate.

/// Builder methods that set one field each, `self.$name = $name` (or
/// `self.$path.$name` after `in $path;`), after an optional check of the
/// value written `=> assert!(..)`.
macro_rules! setters {
    (in $($path:ident).+; $($rest:tt)*) => {
        setters!(@one [$($path.)+] $($rest)*);
    };
    (@one [$($path:tt)*]) => {};
    (@one [$($path:tt)*] $(#[$doc:meta])* $name:ident: $ty:ty $(=> $check:expr)?; $($rest:tt)*) => {
        $(#[$doc])*
        pub fn $name(mut self, $name: $ty) -> Self {
            $($check;)?
            self.$($path)*$name = $name;
            self
        }
        setters!(@one [$($path)*] $($rest)*);
    };
    ($($rest:tt)*) => {
        setters!(@one [] $($rest)*);
    };
}
