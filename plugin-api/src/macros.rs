/// Exports provider factories from a plugin library.
///
/// Put it once in the crate root of a `cdylib` crate, naming one expression per provider type:
///
/// ```ignore
/// qlam_plugin_api::export_providers!(TokenFactory, OtherFactory::new());
/// ```
///
/// It exports the library's root module (the symbol the host looks for), built with this
/// crate's interface version, and wraps every factory and every provider it builds in an
/// adapter that turns a panic into an error of kind [`Panic`](crate::ErrorKind::Panic) naming
/// the provider. The expressions are evaluated once, when the host loads the library; a panic
/// there makes the host refuse the library with a clear message.
#[macro_export]
macro_rules! export_providers {
    ($($factory:expr),+ $(,)?) => {
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        #[no_mangle]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::ffi::__private::LibHeader = {
            extern "C" fn __qlam_root_module_loader() -> $crate::ffi::__private::RootModuleResult {
                $crate::ffi::__private::__call_root_module_loader(__qlam_root_module)
            }
            // SAFETY: the loader returns the root module of type `PluginModRef`, as the
            // constructor requires.
            unsafe {
                $crate::ffi::__private::LibHeader::from_constructor::<$crate::ffi::PluginModRef>(
                    __qlam_root_module_loader,
                    $crate::ffi::__private::CheckTypeLayout::Yes,
                )
            }
        };

        /// Receives the host's log sink (`qlam_plugin_api::ffi::LOG_SINK_SYMBOL`).
        #[doc(hidden)]
        #[no_mangle]
        pub extern "C" fn qlam_plugin_set_log_sink_v1(sink: $crate::ffi::FfiLogSink) {
            // Never unwind into the host.
            let _ = ::std::panic::catch_unwind(move || $crate::ffi::__private::set_log_sink(sink));
        }

        /// The interface fingerprint it was built with (`qlam_plugin_api::ffi::INTERFACE_SYMBOL`).
        #[doc(hidden)]
        #[no_mangle]
        pub extern "C" fn qlam_plugin_interface_v1() -> *const ::std::ffi::c_char {
            $crate::ffi::__private::INTERFACE_C.as_ptr().cast()
        }

        #[doc(hidden)]
        fn __qlam_root_module() -> $crate::ffi::PluginModRef {
            fn make() -> ::std::vec::Vec<::std::boxed::Box<dyn $crate::ProviderFactory>> {
                ::std::vec![$(::std::boxed::Box::new($factory) as ::std::boxed::Box<dyn $crate::ProviderFactory>),+]
            }
            $crate::ffi::__plugin_module(make)
        }
    };
}
